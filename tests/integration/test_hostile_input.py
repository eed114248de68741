"""Hostile input at a real node: malformed messages at both servers, broken Arrow
streams in uploads, statements built to exhaust Spark's parser.

The fuzz cases come from hypothesis with a fixed seed (``derandomize``): the same cases
every run.  Whatever arrives, the answer is a status a client can act on, never
INTERNAL or UNKNOWN, and the node keeps serving."""

from __future__ import annotations

import io
from typing import Any, Callable, Iterator

import grpc
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightmanager.flight import Flight_pb2 as pb
from flightsql.protocol import FlightSql_pb2 as sql_pb
from flightsql.protocol import codec
from flightsql.protocol import commands as cmd
from tests.integration.conftest import RunningNode, connect, flight_client

pytestmark = pytest.mark.integration

SERVICE = "/arrow.flight.protocol.FlightService/"
#: what no input may cause
BROKEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
COMMAND_URLS = [codec.TYPE_URL_PREFIX + message.full_name
                for name, message in sql_pb.DESCRIPTOR.message_types_by_name.items() if name.startswith("Command")]
ACTIONS = ["CreatePreparedStatement", "ClosePreparedStatement", "CancelQuery", "BeginTransaction",
           "EndTransaction", "CreatePreparedSubstraitPlan", "CancelFlightInfo", "RenewFlightEndpoint",
           "SetSessionOptions", "GetSessionOptions", "CloseSession", "PollFlightInfo", "NoSuchAction"]
FUZZ = settings(derandomize=True, max_examples=400, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


class Target:
    """Raw calls (bytes in, bytes out) to one of a node's servers, as a hostile client makes them."""

    def __init__(self, uri: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.channel = grpc.insecure_channel(uri.split("://", 1)[1])
        self.metadata = metadata

    def status(self, method: str, requests: list[bytes], streaming_request: bool = False) -> grpc.StatusCode:
        """The status the call ends with (OK when it succeeds)."""
        call: Callable[..., Any]
        if streaming_request:
            call = self.channel.stream_stream(SERVICE + method)
            argument: Any = iter(requests)
        else:
            call = self.channel.unary_stream(SERVICE + method)
            argument = requests[0]
        try:
            for _ in call(argument, metadata=self.metadata, timeout=60):
                pass
        except grpc.RpcError as exc:
            assert exc.code() not in BROKEN, (method, exc.details())
            return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def public(node: RunningNode) -> Iterator[Target]:
    client, options = flight_client(node)
    header = options.headers[0]
    target = Target(node.uri, ((header[0].decode(), header[1].decode()),))
    yield target
    target.channel.close()
    client.close()


@pytest.fixture(scope="module")
def anonymous(node: RunningNode) -> Iterator[Target]:
    target = Target(node.uri)
    yield target
    target.channel.close()


@pytest.fixture(scope="module")
def internal(node: RunningNode) -> Iterator[Target]:
    target = Target(node.internal_uri)
    yield target
    target.channel.close()


def _still_serves(node: RunningNode) -> None:
    with connect(node) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]


def _flight_data(descriptor: pb.FlightDescriptor | None = None, header: bytes = b"", body: bytes = b"") -> bytes:
    message = pb.FlightData(data_header=header, data_body=body)
    if descriptor is not None:
        message.flight_descriptor.CopyFrom(descriptor)
    return message.SerializeToString()


def _ipc_messages(table: pa.Table) -> list[tuple[bytes, bytes]]:
    """(metadata, body) of each IPC message of a stream of ``table``: schema first."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(sink.getvalue()))
    return [(m.metadata.to_pybytes(), m.body.to_pybytes() if m.body is not None else b"") for m in reader]


UNARY_STREAM_RPCS = ["ListFlights", "DoGet", "DoAction", "ListActions"]
UNARY_RPCS = ["GetFlightInfo", "PollFlightInfo", "GetSchema"]


@FUZZ
@given(method=st.sampled_from(UNARY_RPCS + UNARY_STREAM_RPCS), raw=st.binary(max_size=300))
def test_raw_bytes_at_every_rpc_of_the_public_server(public: Target, anonymous: Target, method: str,
                                                     raw: bytes) -> None:
    for target in (public, anonymous):
        if method in UNARY_RPCS:
            call = target.channel.unary_unary(SERVICE + method)
            try:
                call(raw, metadata=target.metadata, timeout=60)
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()
        else:
            code = target.status(method, [raw])
        assert code not in BROKEN, (method, raw)


@FUZZ
@given(url=st.sampled_from(COMMAND_URLS + ["type.googleapis.com/no.Such", ""]), value=st.binary(max_size=200),
       method=st.sampled_from(UNARY_RPCS))
def test_commands_with_malformed_values(public: Target, url: str, value: bytes, method: str) -> None:
    from google.protobuf import any_pb2

    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD,
                                     cmd=any_pb2.Any(type_url=url, value=value).SerializeToString())
    call = public.channel.unary_unary(SERVICE + method)
    try:
        call(descriptor.SerializeToString(), metadata=public.metadata, timeout=60)
    except grpc.RpcError as exc:
        assert exc.code() not in BROKEN, (url, value, exc.details())


@FUZZ
@given(action=st.sampled_from(ACTIONS), body=st.binary(max_size=200))
def test_actions_with_malformed_bodies(public: Target, action: str, body: bytes) -> None:
    code = public.status("DoAction", [pb.Action(type=action, body=body).SerializeToString()])
    assert code not in BROKEN, (action, body)


@FUZZ
@given(raw=st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_raw_pushes_at_the_internal_server(internal: Target, raw: list[bytes]) -> None:
    assert internal.status("DoPut", raw, streaming_request=True) not in BROKEN, raw


def _ingest_descriptor(table: str) -> pb.FlightDescriptor:
    ingest = cmd.CommandStatementIngest(table=table, if_not_exist="create", if_exists="append")
    return pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=codec.encode_command(ingest))


_SAMPLE = pa.table({"id": pa.array(range(100), pa.int64()), "name": pa.array([f"n{i}" for i in range(100)])})


@FUZZ
@given(cut=st.integers(0, 4000), flip=st.integers(0, 4000), byte=st.integers(0, 255),
       part=st.sampled_from(["header", "body"]))
def test_ingest_of_truncated_or_corrupted_arrow(public: Target, cut: int, flip: int, byte: int, part: str) -> None:
    (schema, _), (batch_header, batch_body) = _ipc_messages(_SAMPLE)
    if part == "header":
        broken = bytearray(batch_header[: cut % (len(batch_header) + 1)])
        if broken:
            broken[flip % len(broken)] = byte
        header, body = bytes(broken), batch_body
    else:
        broken = bytearray(batch_body[: cut % (len(batch_body) + 1)])
        if broken:
            broken[flip % len(broken)] = byte
        header, body = batch_header, bytes(broken)
    messages = [_flight_data(_ingest_descriptor("fuzz_ingest"), schema), _flight_data(header=header, body=body)]
    assert public.status("DoPut", messages, streaming_request=True) not in BROKEN


def _prepared_handle(public: Target, sql: str) -> bytes:
    request = codec.encode_action_body(cmd.CreatePreparedStatement(query=sql))
    call = public.channel.unary_stream(SERVICE + "DoAction")
    raw = next(iter(call(pb.Action(type="CreatePreparedStatement", body=request).SerializeToString(),
                         metadata=public.metadata, timeout=60)))
    result = sql_pb.ActionCreatePreparedStatementResult()
    from google.protobuf import any_pb2

    wrapped = any_pb2.Any.FromString(pb.Result.FromString(raw).body)
    wrapped.Unpack(result)
    return result.prepared_statement_handle  # type: ignore[no-any-return]


@FUZZ
@given(cut=st.integers(0, 4000), flip=st.integers(0, 4000), byte=st.integers(0, 255))
def test_parameters_of_truncated_or_corrupted_arrow(public: Target, cut: int, flip: int, byte: int) -> None:
    handle = _PARAMETER_HANDLE.get("handle")
    if handle is None:
        handle = _PARAMETER_HANDLE["handle"] = _prepared_handle(public, "SELECT ? + 1 AS answer, ? AS label")
    values = pa.table({"a": pa.array([41], pa.int64()), "b": pa.array(["x"])})
    (schema, _), (header, body) = _ipc_messages(values)
    broken = bytearray(body[: cut % (len(body) + 1)])
    if broken:
        broken[flip % len(broken)] = byte
    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=codec.encode_command(
        cmd.CommandPreparedStatementQuery(handle=handle)))
    messages = [_flight_data(descriptor, schema), _flight_data(header=header, body=bytes(broken))]
    assert public.status("DoPut", messages, streaming_request=True) not in BROKEN


_PARAMETER_HANDLE: dict[str, bytes] = {}


def _nested_type(depth: int) -> pa.DataType:
    kind: pa.DataType = pa.int64()
    for level in range(depth):
        kind = pa.list_(kind) if level % 2 else pa.struct([("f", kind)])
    return kind


@pytest.mark.parametrize("depth", [65, 100])
def test_an_upload_of_types_nested_deep_is_refused(public: Target, node: RunningNode, depth: int) -> None:
    schema = pa.schema([("deep", _nested_type(depth))])
    (schema_message, _), *_ = _ipc_messages(schema.empty_table())
    call = public.channel.stream_stream(SERVICE + "DoPut")
    with pytest.raises(grpc.RpcError) as refused:
        list(call(iter([_flight_data(_ingest_descriptor(f"deep_{depth}"), schema_message)]),
                  metadata=public.metadata, timeout=60))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    _still_serves(node)


def test_fuzzing_left_the_node_serving(node: RunningNode) -> None:
    _still_serves(node)


@pytest.mark.parametrize("sql, limit", [
    ("SELECT " + "(" * 50_000 + "1" + ")" * 50_000, "--max-statement-depth"),
    ("SELECT " + "abs(" * 300 + "1" + ")" * 300, "--max-statement-depth"),
    ("SELECT '" + "x" * (1 << 20) + "'", "--max-statement-length"),
])
def test_statements_past_the_limits_are_refused_before_spark_parses_them(node: RunningNode, sql: str,
                                                                         limit: str) -> None:
    import adbc_driver_manager

    with connect(node) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.ProgrammingError) as refused:
            cur.execute(sql)
        assert limit in str(refused.value)
        assert len(str(refused.value)) < 1000  # the statement is not echoed back
    _still_serves(node)


def test_a_long_failing_statement_is_listed_clipped_and_the_node_keeps_its_zookeeper_session(
        node: RunningNode) -> None:
    """A refused statement is listed on the status page (and kept in the history): a
    900 KB one once wedged the node's ZooKeeper client (the znode was past ZooKeeper's limit)."""
    import adbc_driver_manager

    sql = "SELECT '" + "y" * 900_000 + "' AS s FROM no_such_table_anywhere"
    with connect(node) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error, match="TABLE_OR_VIEW_NOT_FOUND"):
            cur.execute(sql)
    for _ in range(3):  # writes to ZooKeeper (a query's registration) still work
        with connect(node) as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM range(10)")
            assert sorted(row[0] for row in cur.fetchall()) == list(range(10))


def test_a_statement_just_inside_the_depth_limit_runs(node: RunningNode) -> None:
    with connect(node) as conn, conn.cursor() as cur:
        cur.execute("SELECT " + "(" * 200 + "7" + ")" * 200 + " AS seven")
        assert cur.fetchall() == [(7,)]
