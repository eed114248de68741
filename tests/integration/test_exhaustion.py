"""No client can freeze a node: streams that are never read, a storm of wrong passwords.

Each case runs against a node of its own (its limits set low, as an operator may) and
times a fresh ``SELECT 1`` of another user while the load is on: it answers within a
second."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flightmanager.flight import Flight_pb2 as pb
from flightsql.protocol import codec
from flightsql.protocol import commands as cmd
from tests.integration.conftest import (
    OTHER_PASSWORD, OTHER_USER, PASSWORD, USER, RunningNode, _add_user, start_node, stop_node, wait_until,
)

pytestmark = pytest.mark.integration

STALL = 4.0
PER_USER = 6
BIG = "SELECT id, id * 3 AS tripled, repeat('x', 40) AS padding FROM range(0, 3000000, 1, 4)"


@pytest.fixture(scope="module")
def busy_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    work = tmp_path_factory.mktemp("busy-node")
    users = work / "users"
    _add_user(users, USER, PASSWORD)
    _add_user(users, OTHER_USER, OTHER_PASSWORD)
    running = start_node(
        work, "--users", str(users), "--max-streams-per-user", str(PER_USER), "--max-streams", "10",
        "--stream-stall-timeout", str(STALL), "--result-ttl", "120",
        "--conf", "spark.driver.memory=768m",
    )
    yield running
    assert stop_node(running) == 0, running.log()[-3000:]


def _client(node: RunningNode, user: str, password: str) -> tuple[flight.FlightClient, flight.FlightCallOptions]:
    client = flight.connect(node.uri)
    return client, flight.FlightCallOptions(headers=[client.authenticate_basic_token(user, password)])


def _select_one_seconds(client: flight.FlightClient, options: flight.FlightCallOptions) -> float:
    """A fresh SELECT 1, planned and read: how long it took."""
    started = time.monotonic()
    query = codec.encode_command(cmd.CommandStatementQuery(query="SELECT 1 AS one"))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(query), options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    assert table.column("one").to_pylist() == [1]
    return time.monotonic() - started


def _never_read(node: RunningNode, ticket: bytes, token: tuple[bytes, bytes]) -> grpc.Future:
    """A DoGet whose client takes nothing: the call is open and its messages stay unread."""
    channel = grpc.insecure_channel(node.uri.split("://", 1)[1])
    call = channel.unary_stream("/arrow.flight.protocol.FlightService/DoGet")
    return call(pb.Ticket(ticket=ticket).SerializeToString(),
                metadata=((token[0].decode(), token[1].decode()),))


def test_streams_that_are_never_read_are_limited_and_ended_and_the_result_stays_readable(
        busy_node: RunningNode) -> None:
    client, options = _client(busy_node, USER, PASSWORD)
    token = options.headers[0]
    other, other_options = _client(busy_node, OTHER_USER, OTHER_PASSWORD)
    _select_one_seconds(other, other_options)  # the other user's session exists before the load
    query = codec.encode_command(cmd.CommandStatementQuery(query=BIG))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(query), options)
    ticket = info.endpoints[0].ticket.ticket
    # read once whole: the job is done, and what follows loads the server's threads alone
    assert client.do_get(info.endpoints[0].ticket, options).read_all().num_rows == 3_000_000
    calls = [_never_read(busy_node, ticket, token) for _ in range(PER_USER + 1)]
    # one stream more than the user may have: it is refused at once, naming the limit
    wait_until(lambda: any(call.done() for call in calls), timeout=STALL / 2, what="a stream refused")
    refused = [call for call in calls if call.done()]
    assert len(refused) == 1
    assert refused[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-streams-per-user" in refused[0].details()
    idle = [call for call in calls if call is not refused[0]]
    # another user is served at once meanwhile
    assert _select_one_seconds(other, other_options) < 1.0
    # the stalled streams end within the stall timeout: the user may open streams again,
    # and the result is read whole with the same ticket
    read: dict[str, pa.Table] = {}

    def read_again() -> bool:
        try:
            read["table"] = client.do_get(info.endpoints[0].ticket, options).read_all()
        except pa.ArrowException as exc:  # pyarrow reports this refusal as ArrowInvalid
            assert "--max-streams-per-user" in str(exc)
            return False
        return True

    wait_until(read_again, timeout=STALL * 3, what="the stalled streams to end")
    table = read["table"]
    assert table.num_rows == 3_000_000
    assert sum(table.column("id").to_pylist()) == sum(range(3_000_000))
    # a stalled client that reads again learns that its stream was ended
    for call in idle:
        with pytest.raises(grpc.RpcError) as ended:
            for _ in call:
                pass
        assert ended.value.code() == grpc.StatusCode.CANCELLED


def test_the_node_wide_stream_limit_keeps_threads_for_short_calls(busy_node: RunningNode) -> None:
    first, first_options = _client(busy_node, USER, PASSWORD)
    second, second_options = _client(busy_node, OTHER_USER, OTHER_PASSWORD)
    _select_one_seconds(first, first_options)
    query = codec.encode_command(cmd.CommandStatementQuery(query=BIG))
    opened = []
    for client, options in ((first, first_options), (second, second_options)):
        info = client.get_flight_info(flight.FlightDescriptor.for_command(query), options)
        assert client.do_get(info.endpoints[0].ticket, options).read_all().num_rows == 3_000_000
        opened += [_never_read(busy_node, info.endpoints[0].ticket.ticket, options.headers[0]) for _ in range(5)]
    # ten streams open (five of each user, under the per-user limit): the node's limit
    for call in opened:
        call.initial_metadata()  # each has reached the node
    assert not any(call.done() for call in opened)
    with pytest.raises(pa.ArrowException, match="--max-streams"):
        second.do_get(info.endpoints[0].ticket, second_options).read_all()
    assert _select_one_seconds(first, first_options) < 1.0
    for call in opened:
        call.cancel()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_storm_of_wrong_passwords_costs_bounded_memory_and_locks_the_user_out(busy_node: RunningNode) -> None:
    # logged in before the storm: tokens never wait for a password check
    other, other_options = _client(busy_node, OTHER_USER, OTHER_PASSWORD)
    before = _rss_mib(busy_node.process.pid)
    stop = threading.Event()
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def storm() -> None:
        client = flight.connect(busy_node.uri)
        while not stop.is_set():
            try:
                client.authenticate_basic_token(USER, "not-the-password")
                outcome = "accepted"
            except flight.FlightUnauthenticatedError as exc:
                outcome = "locked" if "too many failed logins" in str(exc) else "wrong"
            except flight.FlightError as exc:
                outcome = "busy" if "too many logins at once" in str(exc) else f"other: {exc}"
            with lock:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

    threads = [threading.Thread(target=storm, daemon=True) for _ in range(32)]
    for thread in threads:
        thread.start()
    try:
        timings = []
        for _ in range(5):
            timings.append(_select_one_seconds(other, other_options))
            time.sleep(0.5)  # the load goes on between samples
        peak = _rss_mib(busy_node.process.pid)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert max(timings) < 1.0, timings
    assert "accepted" not in outcomes and not any(k.startswith("other") for k in outcomes), outcomes
    assert outcomes.get("locked", 0) > outcomes.get("wrong", 0), outcomes  # refused without hashing
    assert peak - before < 400, (before, peak)
    # the right password, too, is refused while the user is locked out
    with pytest.raises(flight.FlightUnauthenticatedError, match="too many failed logins"):
        flight.connect(busy_node.uri).authenticate_basic_token(USER, PASSWORD)
