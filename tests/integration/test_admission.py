"""Admission on a real node with low limits: one query runs, two may wait for three
seconds; beyond that the node answers RESOURCE_EXHAUSTED, and SELECT 1 is answered
throughout."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flightmanager.flight import Flight_pb2 as pb
from flightsql.protocol import codec
from flightsql.protocol import commands as cmd
from tests.integration.conftest import (
    OTHER_PASSWORD,
    OTHER_USER,
    PASSWORD,
    USER,
    RunningNode,
    _add_user,
    connect,
    flight_client,
    start_node,
    stop_node,
)
from tests.integration.status import WatchedNode, status_url

pytestmark = pytest.mark.integration

#: what pyarrow raises for RESOURCE_EXHAUSTED (a FlightError at GetFlightInfo, ArrowInvalid in a stream)
BUSY = (flight.FlightError, pa.ArrowInvalid)
#: runs until cancelled: ten billion joined rows
BLOCKER = "SELECT count(*) FROM range(0, 100000) a CROSS JOIN range(0, 100000) b"
WAIT = 6.0


@pytest.fixture(scope="module")
def busy_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    work: Path = tmp_path_factory.mktemp("admission")
    users = work / "users"
    _add_user(users, USER, PASSWORD)
    _add_user(users, OTHER_USER, OTHER_PASSWORD)
    running = start_node(
        work, "--users", str(users), "--max-running", "1", "--max-running-per-user", "1", "--max-queued", "2",
        "--queue-wait", str(WAIT), "--conf", "spark.driver.memory=768m",
        "--http-port", "0", "--log-format", "json", "--status-open",
    )
    yield running
    assert stop_node(running) == 0, running.log()[-3000:]


def _info(client, options, sql: str) -> flight.FlightInfo:  # type: ignore[no-untyped-def]
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=sql)))
    return client.get_flight_info(descriptor, options)


def _cancel(client, options, info) -> int:  # type: ignore[no-untyped-def]
    request = pb.CancelFlightInfoRequest(info=pb.FlightInfo.FromString(info.serialize()))
    (result,) = client.do_action(flight.Action("CancelFlightInfo", request.SerializeToString()), options)
    return pb.CancelFlightInfoResult.FromString(result.body.to_pybytes()).status


def _rows(client, options, info) -> int:  # type: ignore[no-untyped-def]
    return sum(client.do_get(e.ticket, options).read_all().num_rows for e in info.endpoints)


def _select_1_seconds(node: RunningNode) -> float:
    client, options = flight_client(node, OTHER_USER, OTHER_PASSWORD)
    started = time.monotonic()
    assert _rows(client, options, _info(client, options, "SELECT 1 AS one")) == 1
    return time.monotonic() - started


def test_beyond_the_slots_queries_wait_then_are_refused_and_select_1_is_answered(busy_node: RunningNode) -> None:
    alice, alice_options = flight_client(busy_node)
    bob, bob_options = flight_client(busy_node, OTHER_USER, OTHER_PASSWORD)
    blocker = _info(alice, alice_options, BLOCKER)
    try:
        waiting = _info(bob, bob_options, "SELECT id FROM range(0, 10)")
        cancelled = _info(alice, alice_options, "SELECT id FROM range(0, 20)")
        with pytest.raises(BUSY, match="the server is busy") as refused:
            _info(bob, bob_options, "SELECT id FROM range(0, 30)")
        assert "try again in about" in str(refused.value)

        # a waiting query can be cancelled: its reader is told so
        assert _cancel(alice, alice_options, cancelled) == pb.CANCEL_STATUS_CANCELLED
        with pytest.raises(flight.FlightCancelledError):
            _rows(alice, alice_options, cancelled)
        assert _select_1_seconds(busy_node) < 5  # answered by the driver, taking no slot

        # one that waits longer than allowed fails busy: its reader ends, with the reason
        started = time.monotonic()
        with pytest.raises(BUSY, match="waited 6 s for a slot"):
            _rows(bob, bob_options, waiting)
        assert time.monotonic() - started < WAIT + 10
    finally:
        assert _cancel(alice, alice_options, blocker) == pb.CANCEL_STATUS_CANCELLED
    # the slot is free again
    assert _rows(bob, bob_options, _info(bob, bob_options, "SELECT id FROM range(0, 40)")) == 40


def test_many_clients_at_once_get_exact_rows_or_busy_and_nothing_else(busy_node: RunningNode) -> None:
    def one(i: int) -> str:
        client, options = flight_client(busy_node, *((USER, PASSWORD) if i % 2 else (OTHER_USER, OTHER_PASSWORD)))
        try:
            rows = _rows(client, options, _info(client, options, f"SELECT id FROM range(0, {1000 + i})"))
            return "exact" if rows == 1000 + i else f"{rows} rows"
        except BUSY as exc:
            return "busy" if "the server is busy" in str(exc) or "for a slot" in str(exc) else repr(exc)
        finally:
            client.close()

    answered: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            answered.append(_select_1_seconds(busy_node))

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        with ThreadPoolExecutor(24) as pool:
            outcomes = list(pool.map(one, range(48)))
    finally:
        stop.set()
        prober.join(60)
    assert set(outcomes) <= {"exact", "busy"}, outcomes
    assert "exact" in outcomes  # the slot kept working through the crowd
    assert answered and max(answered) < 5, answered


def _poll(node: RunningNode, descriptor: pb.FlightDescriptor, user: str = USER, password: str = PASSWORD) -> pb.PollInfo:
    import grpc

    client, options = flight_client(node, user, password)
    token = client.authenticate_basic_token(user, password)
    client.close()
    with grpc.insecure_channel(node.uri.removeprefix("grpc://")) as channel:
        call = channel.unary_unary("/arrow.flight.protocol.FlightService/PollFlightInfo",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=pb.PollInfo.FromString)
        return call(descriptor, metadata=[(token[0].decode(), token[1].decode())], timeout=60)


def test_polling_a_query_shows_its_place_in_the_queue_then_its_progress_to_complete(busy_node: RunningNode) -> None:
    alice, alice_options = flight_client(busy_node)
    blocker = _info(alice, alice_options, BLOCKER)
    sql = "SELECT k, count(*) AS n FROM (SELECT id % 10 AS k FROM range(0, 4000000, 1, 8)) GROUP BY k"
    command = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD,
                                  cmd=codec.encode_command(cmd.CommandStatementQuery(query=sql)))
    try:
        waiting = _poll(busy_node, command)
        state = json.loads(waiting.info.app_metadata)
        assert state == {"state": "PENDING", "fraction": 0.0, "queue_position": 1}
        assert waiting.progress == 0.0 and waiting.HasField("flight_descriptor")
        assert len(waiting.info.endpoint) == 1  # readers may start at once
        listed = WatchedNode(busy_node, status_url(busy_node), authorization=None).query(sql)
        assert listed is not None and listed["state"] == "PENDING"
        assert listed["progress"]["queue_position"] == 1  # the status page tells the same
    finally:
        assert _cancel(alice, alice_options, blocker) == pb.CANCEL_STATUS_CANCELLED
    seen = [waiting]
    while seen[-1].HasField("flight_descriptor"):
        seen.append(_poll(busy_node, seen[-1].flight_descriptor))
    final = seen[-1]
    assert final.progress == 1.0 and json.loads(final.info.app_metadata)["state"] == "FINISHED"
    for running in (json.loads(p.info.app_metadata) for p in seen[1:-1]):
        if running["state"] == "RUNNING":
            assert 0.0 <= running["fraction"] <= 0.99 and running["tasks_total"] >= running["tasks_done"]
    with pytest.raises(Exception, match="ticket"):  # another user cannot poll it
        _poll(busy_node, seen[-2].flight_descriptor if len(seen) > 1 else waiting.flight_descriptor,
              OTHER_USER, OTHER_PASSWORD)
    info = flight.FlightInfo.deserialize(final.info.SerializeToString())
    table = alice.do_get(info.endpoints[0].ticket, alice_options).read_all()
    assert sorted(table.column("n").to_pylist()) == [400000] * 10


def test_polling_a_failed_query_gives_its_error(busy_node: RunningNode) -> None:
    command = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=codec.encode_command(
        cmd.CommandStatementQuery(query="SELECT assert_true(id < 5) FROM range(0, 10)")))
    with pytest.raises(Exception, match="assert_true|id < 5"):
        again = _poll(busy_node, command)
        while again.HasField("flight_descriptor"):
            again = _poll(busy_node, again.flight_descriptor)


def test_adbc_incremental_execution_polls_a_query_to_its_whole_result(busy_node: RunningNode) -> None:
    """ADBC's incremental execution is PollFlightInfo: the first call submits the query and
    hands over its endpoints at once (readers may start); the next call polls until the
    result is whole and then returns no partition, which ends the execution."""
    from adbc_driver_manager import StatementOptions

    sql = "SELECT k, count(*) AS n FROM (SELECT id % 10 AS k FROM range(0, 3000000, 1, 8)) GROUP BY k"
    with connect(busy_node) as conn, conn.cursor() as cur:
        cur.adbc_statement.set_options(**{StatementOptions.INCREMENTAL.value: "true"})
        partitions, schema = cur.adbc_execute_partitions(sql)
        assert partitions and schema is not None and schema.names == ["k", "n"]
        assert 0.0 <= cur.adbc_statement.get_option_float(StatementOptions.PROGRESS.value) < 1.0
        more, _, _ = cur.adbc_statement.execute_partitions()
        assert more == []  # complete: nothing new, the execution is over
        rows = []
        for partition in partitions:
            cur.adbc_read_partition(partition)
            rows.extend(cur.fetchall())
    assert sorted(rows) == [(k, 300000) for k in range(10)]
