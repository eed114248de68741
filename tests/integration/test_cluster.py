"""Three real nodes on one real ZooKeeper: results spread over every node."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

from flightsql.protocol import codec

from flightsql.protocol import commands as cmd
from tests.integration.conftest import (
    OTHER_PASSWORD, OTHER_USER, PASSWORD, USER, RunningNode, _add_user, connect, start_node, stop_node, wait_until,
)
from tests.integration.status import WatchedNode, metric_total, status_url
from tests.integration.zookeeper import ZooKeeperServer, zookeeper  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

SPREAD_SQL = "SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM range(0, 600000, 1, 12)"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zookeeper: ZooKeeperServer) -> Iterator[list[RunningNode]]:
    base = tmp_path_factory.mktemp("cluster")
    users = base / "users"
    _add_user(users, USER, PASSWORD)
    _add_user(users, OTHER_USER, OTHER_PASSWORD)
    args = ("--users", str(users), *zookeeper.node_args("/cluster-test"), "--result-ttl", "15",
            "--conf", "spark.driver.memory=768m", "--master", "local[1,4]",  # tasks may be retried
            # the operator trusts these users with reflection: slow partitions (Thread.sleep) for fault tests
            "--allow-server-access", "reflection", "--http-port", "0")
    with ThreadPoolExecutor(3) as pool:
        nodes = list(pool.map(lambda i: start_node(base / f"node{i}", *args), range(3)))
    yield nodes
    for node in nodes:
        if node.process.poll() is None:
            stop_node(node)


def _watched(cluster: list[RunningNode]) -> list[WatchedNode]:
    """The nodes' status pages and metrics (as alice: any logged-in user sees them without a policy)."""
    return [WatchedNode(node, status_url(node)) for node in cluster if node.process.poll() is None]


def _pushes(cluster: list[RunningNode], outcome: str) -> float:
    return metric_total(_watched(cluster), "flightsql_partitions_pushed_total", outcome=outcome)


def _nodes_seen_by(node: RunningNode) -> dict[str, dict[str, object]]:
    """The nodes ``node`` sees in the cluster, by Flight SQL URI (its status API)."""
    return {n["public_uri"]: n for n in WatchedNode(node, status_url(node)).get_json("api/status")["nodes"]}


def _client(node: RunningNode, user: str = USER, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    client = flight.connect(node.uri)
    return client, flight.FlightCallOptions(headers=[client.authenticate_basic_token(user, password)])


def _info(node: RunningNode, sql: str, user: str = USER, password: str = PASSWORD) -> flight.FlightInfo:
    client, options = _client(node, user, password)
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=sql)))
    return client.get_flight_info(descriptor, options)


def _read(endpoint: flight.FlightEndpoint, nodes: list[RunningNode], user: str = USER, password: str = PASSWORD) -> pa.Table:
    (location,) = endpoint.locations
    node = next(n for n in nodes if n.uri == location.uri.decode())
    client, options = _client(node, user, password)
    return client.do_get(endpoint.ticket, options).read_all()


def test_every_node_serves_a_share(cluster: list[RunningNode]) -> None:
    info = _info(cluster[0], SPREAD_SQL)
    locations = sorted(e.locations[0].uri.decode() for e in info.endpoints)
    assert locations == sorted(n.uri for n in cluster)
    parts = [_read(e, cluster) for e in info.endpoints]
    assert all(p.num_rows > 0 for p in parts), [p.num_rows for p in parts]
    ids = pa.concat_tables(parts).column("id").to_pylist()
    assert sorted(ids) == list(range(600000))  # every row once: none missing, none twice


def test_retried_tasks_never_duplicate_rows(cluster: list[RunningNode]) -> None:
    dropped = _pushes(cluster, "dropped")
    with connect(cluster[0]) as conn, conn.cursor() as cur:
        cur.execute("SET spark.flightsql.test.failAfterCommit=true")
        try:
            cur.execute(SPREAD_SQL)
            table = cur.fetch_arrow_table()
        finally:
            cur.execute("SET spark.flightsql.test.failAfterCommit=false")
    assert sorted(table.column("id").to_pylist()) == list(range(600000))  # once each, none missing
    # every partition's retry pushed again, and the nodes dropped it (a metric, as an operator sees it)
    assert _pushes(cluster, "dropped") - dropped >= 12


def test_a_task_that_dies_mid_partition_is_retried_without_losing_or_repeating_a_row(
    cluster: list[RunningNode],
) -> None:
    """A deterministic query's partitions are pushed in pieces that readers get as they
    commit. Every task's first attempt stops after two pieces; the retry skips them."""
    incomplete = _pushes(cluster, "incomplete")
    with connect(cluster[0]) as conn, conn.cursor() as cur:
        cur.execute("SET spark.sql.execution.arrow.maxRecordsPerBatch=2000")  # 25 batches a partition
        cur.execute("SET spark.flightsql.test.failMidPartition=true")
        try:
            cur.execute(SPREAD_SQL)
            table = cur.fetch_arrow_table()
        finally:
            cur.execute("SET spark.flightsql.test.failMidPartition=false")
    assert sorted(table.column("id").to_pylist()) == list(range(600000))  # once each, none missing
    assert pc.sum(table.column("doubled")).as_py() == 600000 * 599999
    # the first attempts were pushed in pieces and stopped midway: the nodes saw pushes end unfinished
    assert _pushes(cluster, "incomplete") - incomplete >= 12


def test_adbc_reads_all_endpoints(cluster: list[RunningNode]) -> None:
    with connect(cluster[1]) as conn, conn.cursor() as cur:
        cur.execute(SPREAD_SQL)
        table = cur.fetch_arrow_table()
    assert table.num_rows == 600000
    assert sorted(table.column("doubled").to_pylist()) == [2 * i for i in range(600000)]


def test_any_node_coordinates_and_order_is_kept(cluster: list[RunningNode]) -> None:
    with connect(cluster[2]) as conn, conn.cursor() as cur:
        # enough rows, and AQE's coalescing off, so the sort keeps several partitions
        cur.execute("SET spark.sql.adaptive.coalescePartitions.enabled=false")
        cur.execute("SELECT id FROM range(0, 400000, 1, 6) ORDER BY id DESC")
        table = cur.fetch_arrow_table()
        cur.execute("SET spark.sql.adaptive.coalescePartitions.enabled=true")
    assert table.column("id").to_pylist() == list(range(399999, -1, -1))


def test_single_mode_keeps_a_result_on_one_node(cluster: list[RunningNode]) -> None:
    from flightmanager.flight import Flight_pb2 as pb

    assert len(_info(cluster[0], SPREAD_SQL).endpoints) == 3
    client, options = _client(cluster[0])

    def set_mode(mode: str) -> None:
        request = pb.SetSessionOptionsRequest(session_options={"execution_mode": pb.SessionOptionValue(string_value=mode)})
        list(client.do_action(flight.Action("SetSessionOptions", request.SerializeToString()), options))

    set_mode("single")
    try:
        descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=SPREAD_SQL)))
        info = client.get_flight_info(descriptor, options)
        assert [e.locations[0].uri.decode() for e in info.endpoints] == [cluster[0].uri]
        assert client.do_get(info.endpoints[0].ticket, options).read_all().num_rows == 600000
    finally:
        set_mode("auto")


def test_a_token_from_one_node_works_on_every_node(cluster: list[RunningNode]) -> None:
    first = flight.connect(cluster[0].uri)
    token = first.authenticate_basic_token(USER, PASSWORD)
    options = flight.FlightCallOptions(headers=[token])
    for node in cluster[1:]:
        actions = list(flight.connect(node.uri).list_actions(options))
        assert any(a.type == "CancelFlightInfo" for a in actions)


def test_expired_ticket_is_not_found(cluster: list[RunningNode]) -> None:
    info = _info(cluster[0], "SELECT id FROM range(0, 100, 1, 3)")
    for endpoint in info.endpoints:
        _read(endpoint, cluster)  # readable now, on every node
    # a finished result lives one TTL from completion, which may be later than advertised
    client, options = _client(cluster[0])
    from flightmanager.flight import Flight_pb2 as pb

    request = pb.RenewFlightEndpointRequest(endpoint=pb.FlightEndpoint.FromString(info.endpoints[0].serialize()))
    (renewed,) = client.do_action(flight.Action("RenewFlightEndpoint", request.SerializeToString()), options)
    expires_ns = pb.FlightEndpoint.FromString(renewed.body.to_pybytes()).expiration_time.ToNanoseconds()

    def expired() -> bool:
        for endpoint in info.endpoints:
            try:
                _read(endpoint, cluster)
                return False
            except pa.ArrowKeyError:  # gRPC NOT_FOUND
                continue
        return True

    wait_until(expired, max(0.0, expires_ns / 1e9 - time.time()) + 15, "the results to expire")
    assert time.time() >= expires_ns / 1e9  # not before the renewed expiration time


def test_another_users_ticket_is_refused_on_every_node(cluster: list[RunningNode]) -> None:
    info = _info(cluster[0], SPREAD_SQL)
    for endpoint in info.endpoints:
        with pytest.raises(flight.FlightUnauthorizedError):
            _read(endpoint, cluster, OTHER_USER, OTHER_PASSWORD)


def _rows(client: flight.FlightClient, options: flight.FlightCallOptions, nodes: list[RunningNode],
          command: object) -> list[tuple]:  # type: ignore[type-arg]
    info = client.get_flight_info(flight.FlightDescriptor.for_command(codec.encode_command(command)), options)
    parts = [_read(e, nodes) for e in info.endpoints]
    table = pa.concat_tables(parts) if parts else pa.table({})
    return sorted(zip(*(c.to_pylist() for c in table.columns)))


def test_a_session_keeps_its_schema_and_settings_on_another_node(cluster: list[RunningNode]) -> None:
    """A client whose calls land on different nodes (a load balancer) stays in one session."""
    for node in cluster:  # these nodes keep their own metastores: the schema exists on each
        client, login = _client(node)
        _rows(client, login, cluster, cmd.CommandStatementQuery(query="CREATE DATABASE IF NOT EXISTS roaming"))
    first = flight.connect(cluster[0].uri)
    options = flight.FlightCallOptions(headers=[first.authenticate_basic_token(USER, PASSWORD)])
    for sql in ("USE roaming", "SET spark.sql.shuffle.partitions=5"):
        _rows(first, options, cluster, cmd.CommandStatementQuery(query=sql))
    second = flight.connect(cluster[1].uri)  # the same token names the same session
    assert _rows(second, options, cluster, cmd.CommandStatementQuery(query="SELECT current_database()")) == [
        ("roaming",)]
    assert _rows(second, options, cluster, cmd.CommandStatementQuery(query="SET spark.sql.shuffle.partitions")) == [
        ("spark.sql.shuffle.partitions", "5")]
    _rows(second, options, cluster, cmd.CommandStatementQuery(query="USE default"))
    assert _rows(first, options, cluster, cmd.CommandStatementQuery(query="SELECT current_database()")) == [
        ("default",)]


def test_a_statement_prepared_on_one_node_runs_on_another(cluster: list[RunningNode]) -> None:
    from flightsql.protocol import results

    first, third = flight.connect(cluster[0].uri), flight.connect(cluster[2].uri)
    options = flight.FlightCallOptions(headers=[first.authenticate_basic_token(USER, PASSWORD)])
    body = codec.encode_action_body(cmd.CreatePreparedStatement(query="SELECT id * ? AS x FROM range(0, 3000, 1, 6)"))
    (created,) = first.do_action(flight.Action("CreatePreparedStatement", body), options)
    handle = results.decode_create_prepared_statement_result(created.body.to_pybytes())[0]

    values = pa.table({"p": pa.array([10], pa.int64())})
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandPreparedStatementQuery(handle=handle)))
    writer, reader = first.do_put(descriptor, values.schema, options)
    writer.write_table(values)
    writer.done_writing()
    bound = results.decode_do_put_prepared_statement_result(reader.read().to_pybytes())
    writer.close()
    assert bound is not None and bound != handle  # the values travel in the handle

    rows = _rows(third, options, cluster, cmd.CommandPreparedStatementQuery(handle=bound))
    assert rows == [(10 * i,) for i in range(3000)]
    # the first handle, on a node that never saw the statement nor its values
    second = flight.connect(cluster[1].uri)
    assert set(_rows(second, options, cluster, cmd.CommandPreparedStatementQuery(handle=handle))) == {(None,)}

    bob = flight.connect(cluster[1].uri)
    bob_options = flight.FlightCallOptions(headers=[bob.authenticate_basic_token(OTHER_USER, OTHER_PASSWORD)])
    with pytest.raises(flight.FlightUnauthorizedError, match="not issued to you"):
        _rows(bob, bob_options, cluster, cmd.CommandPreparedStatementQuery(handle=bound))


def test_forged_push_is_refused(cluster: list[RunningNode]) -> None:
    from flightmanager.push import PushHeader, completion_marker

    info = _info(cluster[0], "SELECT id FROM range(0, 10, 1, 2)")
    query_id = info.endpoints[0].ticket.ticket[5:37].decode()
    # the internal URI is in the node's ready line
    internal = next(line for line in cluster[1].log_lines if "ready:" in line).split("(internal ")[1].split(",")[0]
    client = flight.connect(internal)
    header = PushHeader(query_id, 0, 0, "0" * 64)  # a MAC not made with the cluster's push key
    writer, reader = client.do_put(flight.FlightDescriptor.for_command(header.encode()), pa.schema([("id", pa.int64())]))
    with pytest.raises(flight.FlightUnauthorizedError):
        writer.write_metadata(pa.py_buffer(completion_marker(0)))
        writer.done_writing()
        reader.read()
        writer.close()


def test_losing_a_node_fails_every_stream_quickly(cluster: list[RunningNode]) -> None:
    # partitions that take a while, so the query is running when a node dies
    sql = "SELECT id, reflect('java.lang.Thread', 'sleep', 1500L) AS s FROM range(0, 24, 1, 24)"
    info = _info(cluster[0], sql)
    victim = cluster[2]
    errors: dict[str, BaseException | None] = {}

    def read(endpoint: flight.FlightEndpoint) -> None:
        location = endpoint.locations[0].uri.decode()
        if location == victim.uri:
            return
        try:
            _read(endpoint, cluster)
            errors[location] = None
        except BaseException as exc:  # noqa: BLE001 - inspected below
            errors[location] = exc

    threads = [threading.Thread(target=read, args=(e,)) for e in info.endpoints]
    received = metric_total(_watched(cluster), "flightsql_result_rows_received_total")
    for t in threads:
        t.start()
    # the job is pushing: some partition reached a node
    wait_until(lambda: metric_total(_watched(cluster), "flightsql_result_rows_received_total") > received, 60,
               "the first push")
    os.kill(victim.process.pid, signal.SIGKILL)
    started = time.monotonic()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a reader hung after a node was lost"
    elapsed = time.monotonic() - started
    assert set(errors) == {e.locations[0].uri.decode() for e in info.endpoints} - {victim.uri}
    for location, error in errors.items():
        assert error is not None, f"{location} delivered a result although a node holding part of it died"
        assert "lost" in str(error) or "failed" in str(error), str(error)
    assert elapsed < 45


def test_a_drained_node_leaves_once_its_results_are_read(cluster: list[RunningNode]) -> None:
    # whichever nodes earlier tests left alive (one may have been killed): once the first
    # sees exactly them, a result spreads over them all
    alive = [n for n in cluster if n.process.poll() is None]
    first, leaving = alive[0], alive[1]
    wait_until(lambda: set(_nodes_seen_by(first)) == {n.uri for n in alive}, 45, "the cluster to see the live nodes")
    before = _info(first, SPREAD_SQL)
    assert sorted(e.locations[0].uri.decode() for e in before.endpoints) == sorted(n.uri for n in alive)
    ours = next(e for e in before.endpoints if e.locations[0].uri.decode() == first.uri)
    theirs = next(e for e in before.endpoints if e.locations[0].uri.decode() == leaving.uri)
    first_part = _read(ours, cluster)

    others = [n for n in before.endpoints if n.locations[0].uri.decode() not in (first.uri, leaving.uri)]
    parts_elsewhere = [_read(e, cluster) for e in others]

    leaving.process.send_signal(signal.SIGTERM)
    # the leaving node's part has not been read: it waits for its reader

    wait_until(lambda: bool(_nodes_seen_by(first).get(leaving.uri, {}).get("draining")), 30,
               "the cluster to see the drain")
    assert leaving.process.poll() is None

    # no new work for it: new queries are refused there and get no endpoint on it
    with pytest.raises(flight.FlightUnavailableError, match="draining"):
        _info(leaving, "SELECT 1")
    after = _info(first, SPREAD_SQL)
    assert sorted(e.locations[0].uri.decode() for e in after.endpoints) == sorted(
        n.uri for n in alive if n is not leaving)
    assert sum(_read(e, cluster).num_rows for e in after.endpoints) == 600000

    # its reader gets every row it holds; then it stops by itself, cleanly
    their_part = _read(theirs, cluster)
    ids = pa.concat_tables([first_part, their_part, *parts_elsewhere]).column("id").to_pylist()
    assert sorted(ids) == list(range(600000))
    assert leaving.process.wait(30) == 0
    wait_until(lambda: leaving.uri not in _nodes_seen_by(first), 30, "the drained node's leave")
    # a clean leave fails nothing: the first node's part of the old query is still readable
    assert _read(ours, cluster).num_rows == first_part.num_rows
