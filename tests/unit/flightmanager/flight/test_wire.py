"""Arrow data on the Flight wire: encodings round-trip and interoperate with pyarrow Flight."""

from __future__ import annotations

import datetime
import decimal
import threading

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flightmanager.flight import Flight_pb2 as pb
from flightmanager.flight.service import FlightService, start_server
from flightmanager.flight.wire import (
    EncodedBatch,
    batch_from_message,
    decode_stream,
    message_type,
    parse_flight_data,
    schema_flight_data,
    schema_from_bytes,
    schema_from_message,
    schema_to_bytes,
)

UTC = datetime.timezone.utc


def _batch(array: pa.Array, name: str = "c") -> pa.RecordBatch:
    return pa.record_batch([array], names=[name])


CASES = {
    "int8": pa.array([1, -2, None, 127], pa.int8()),
    "int16": pa.array([1, -300, None], pa.int16()),
    "int32": pa.array([2**31 - 1, -(2**31), None], pa.int32()),
    "int64": pa.array([2**63 - 1, -(2**63), 0, None], pa.int64()),
    "uint64": pa.array([0, 2**64 - 1, None], pa.uint64()),
    "float32": pa.array([1.5, -0.0, None, float("inf")], pa.float32()),
    "float64": pa.array([3.141592653589793, float("-inf"), None], pa.float64()),
    "decimal128": pa.array(
        [decimal.Decimal("12345678.90"), decimal.Decimal("-0.01"), None], pa.decimal128(10, 2)
    ),
    "decimal256": pa.array([decimal.Decimal("1" * 40), None], pa.decimal256(50, 0)),
    "string_with_nulls": pa.array(["a", None, "", "héllo wörld", None, "x" * 1000], pa.string()),
    "large_string": pa.array(["big", None, "strings"], pa.large_string()),
    "binary": pa.array([b"\x00\x01\xff", None, b""], pa.binary()),
    "large_binary": pa.array([b"abc", None], pa.large_binary()),
    "fixed_size_binary": pa.array([b"abcd", None, b"wxyz"], pa.binary(4)),
    "bool": pa.array([True, False, None, True, True, False, False, True, True], pa.bool_()),
    "date32": pa.array([datetime.date(1970, 1, 1), None, datetime.date(2999, 12, 31)], pa.date32()),
    "date64": pa.array([datetime.date(2024, 2, 29), None], pa.date64()),
    "timestamp_us_utc": pa.array(
        [datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC), None], pa.timestamp("us", tz="UTC")
    ),
    "timestamp_ns_paris": pa.array([1_700_000_000_123_456_789, None], pa.timestamp("ns", tz="Europe/Paris")),
    "timestamp_ms_naive": pa.array([0, 1, None], pa.timestamp("ms")),
    "time64": pa.array([1, None], pa.time64("us")),
    "duration": pa.array([5, None], pa.duration("s")),
    "null": pa.array([None, None, None], pa.null()),
    "list": pa.array([[1, 2], None, [], [None, 3]], pa.list_(pa.int32())),
    "large_list_of_strings": pa.array([["a", None], None, []], pa.large_list(pa.string())),
    "nested_list": pa.array([[[1], [2, 3]], None, [[]]], pa.list_(pa.list_(pa.int64()))),
    "map": pa.array(
        [[("a", 1), ("b", None)], None, []], pa.map_(pa.string(), pa.int64())
    ),
    "struct": pa.array(
        [{"x": 1, "y": "one"}, None, {"x": None, "y": "three"}],
        pa.struct([("x", pa.int32()), ("y", pa.string())]),
    ),
    "struct_of_list": pa.array(
        [{"xs": [1.0, 2.0]}, {"xs": None}], pa.struct([("xs", pa.list_(pa.float64()))])
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoded_batch_round_trip(name: str) -> None:
    batch = _batch(CASES[name])
    encoded = EncodedBatch.from_record_batch(batch)

    assert encoded.rows == batch.num_rows
    assert encoded.nbytes == len(encoded.header) + len(encoded.body)
    decoded = encoded.to_record_batch(batch.schema)
    assert decoded.equals(batch)
    assert decoded.schema == batch.schema


def test_many_columns_in_one_batch_round_trip() -> None:
    names = sorted(CASES)
    lengths = {len(CASES[n]) for n in names}
    rows = min(lengths)
    batch = pa.record_batch([CASES[n].slice(0, rows) for n in names], names=names)

    decoded = EncodedBatch.from_record_batch(batch).to_record_batch(batch.schema)

    assert decoded.equals(batch)


def test_sliced_batch_round_trip() -> None:
    batch = pa.record_batch(
        [pa.array(range(100)), pa.array([str(i) if i % 3 else None for i in range(100)])],
        names=["i", "s"],
    ).slice(17, 40)

    decoded = EncodedBatch.from_record_batch(batch).to_record_batch(batch.schema)

    assert decoded.equals(batch)
    assert decoded.column(0).to_pylist() == list(range(17, 57))


def test_empty_batch_round_trip() -> None:
    schema = pa.schema([("a", pa.int64()), ("s", pa.string()), ("l", pa.list_(pa.int8()))])
    batch = pa.RecordBatch.from_pylist([], schema=schema)
    encoded = EncodedBatch.from_record_batch(batch)

    assert encoded.rows == 0
    decoded = encoded.to_record_batch(schema)
    assert decoded.num_rows == 0
    assert decoded.schema == schema


def test_batch_without_columns_round_trip() -> None:
    batch = pa.RecordBatch.from_arrays([], names=[])
    decoded = EncodedBatch.from_record_batch(batch).to_record_batch(pa.schema([]))
    assert decoded.num_columns == 0
    assert decoded.num_rows == 0


def test_to_ipc_is_a_readable_ipc_message() -> None:
    batch = _batch(CASES["string_with_nulls"])
    ipc = EncodedBatch.from_record_batch(batch).to_ipc()

    message = pa.ipc.read_message(pa.py_buffer(ipc))

    assert message.type == "record batch"
    assert pa.ipc.read_record_batch(message, batch.schema).equals(batch)


def test_to_record_batch_refuses_a_schema_message() -> None:
    schema = pa.schema([("a", pa.int64())])
    parsed = parse_flight_data(schema_flight_data(schema))
    not_a_batch = EncodedBatch(bytes(parsed.header), b"", 0)
    with pytest.raises(ValueError, match="record batch"):
        not_a_batch.to_record_batch(schema)


def test_parse_flight_data_of_to_flight_data() -> None:
    batch = _batch(CASES["struct"])
    encoded = EncodedBatch.from_record_batch(batch)

    message = parse_flight_data(encoded.to_flight_data())

    assert bytes(message.header) == encoded.header
    assert bytes(message.body) == encoded.body
    assert message.descriptor == b""
    assert message.app_metadata == b""
    assert message_type(message) == "record batch"
    again = batch_from_message(message, batch.num_rows)
    assert again == encoded
    assert again.to_record_batch(batch.schema).equals(batch)


def test_to_flight_data_is_a_valid_flight_data_protobuf() -> None:
    encoded = EncodedBatch.from_record_batch(_batch(CASES["int64"]))

    proto = pb.FlightData.FromString(encoded.to_flight_data())

    assert proto.data_header == encoded.header
    assert proto.data_body == encoded.body
    assert proto.app_metadata == b""


def test_parse_flight_data_reads_every_field_of_a_protobuf_message() -> None:
    encoded = EncodedBatch.from_record_batch(_batch(CASES["float64"]))
    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=b"hello")
    raw = pb.FlightData(
        flight_descriptor=descriptor,
        data_header=encoded.header,
        app_metadata=b"\x03\x00\x00\x00\x00\x00\x00\x00",
        data_body=encoded.body,
    ).SerializeToString()

    message = parse_flight_data(raw)

    assert pb.FlightDescriptor.FromString(message.descriptor).cmd == b"hello"
    assert bytes(message.header) == encoded.header
    assert bytes(message.body) == encoded.body
    assert message.app_metadata == b"\x03" + b"\x00" * 7


def test_parse_flight_data_skips_unknown_fields() -> None:
    encoded = EncodedBatch.from_record_batch(_batch(CASES["int32"]))
    varint_field = b"\x28\x96\x01"  # field 5, varint 150
    fixed64_field = b"\x31" + b"\x01" * 8  # field 6, fixed64
    fixed32_field = b"\x3d" + b"\x02" * 4  # field 7, fixed32
    unknown_bytes = b"\x42\x03abc"  # field 8, length-delimited
    raw = varint_field + fixed64_field + encoded.to_flight_data() + fixed32_field + unknown_bytes

    message = parse_flight_data(raw)

    assert bytes(message.header) == encoded.header
    assert bytes(message.body) == encoded.body


def test_parse_flight_data_of_empty_message() -> None:
    message = parse_flight_data(b"")
    assert message.descriptor == b""
    assert bytes(message.header) == b""
    assert bytes(message.body) == b""
    assert message.app_metadata == b""


def test_schema_flight_data_round_trip() -> None:
    schema = pa.schema(
        [pa.field(name, CASES[name].type) for name in sorted(CASES)],
        metadata={b"origin": b"test"},
    )

    message = parse_flight_data(schema_flight_data(schema))

    assert message_type(message) == "schema"
    assert bytes(message.body) == b""
    decoded = schema_from_message(message)
    assert decoded.equals(schema, check_metadata=True)


def test_schema_with_nullability_and_field_metadata_round_trip() -> None:
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False, metadata={b"k": b"v"}),
            pa.field("name", pa.string(), nullable=True),
        ]
    )
    decoded = schema_from_message(parse_flight_data(schema_flight_data(schema)))
    assert decoded.equals(schema, check_metadata=True)
    assert decoded.field("id").nullable is False


def test_schema_bytes_round_trip() -> None:
    schema = pa.schema([("a", pa.decimal128(38, 10)), ("b", pa.timestamp("us", tz="UTC"))])
    assert schema_from_bytes(schema_to_bytes(schema)) == schema


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\x12", id="key without length"),
        pytest.param(b"\x12\x05ab", id="header shorter than its length"),
        pytest.param(b"\x12\x80", id="length varint cut"),
        pytest.param(b"\xff" * 12, id="endless varint"),
        pytest.param(b"\x0b\x00", id="group wire type"),
        pytest.param(b"\x0e", id="invalid wire type 6"),
    ],
)
def test_garbage_flight_data_raises_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_flight_data(raw)


@pytest.mark.parametrize("cut", [1, 2, 5, 40, -1, -7])
def test_truncated_flight_data_raises_value_error(cut: int) -> None:
    raw = EncodedBatch.from_record_batch(_batch(CASES["string_with_nulls"])).to_flight_data()
    with pytest.raises(ValueError, match="truncated"):
        parse_flight_data(raw[:cut])


@pytest.mark.parametrize("raw", [b"\x09\x01\x02", b"\x0d\x01"], ids=["fixed64", "fixed32"])
def test_truncated_fixed_width_field_raises_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_flight_data(raw)


def test_decode_stream_decodes_batches_after_the_schema() -> None:
    schema = pa.schema([("a", pa.int64()), ("s", pa.string())])
    batches = [
        pa.record_batch([pa.array([i, i + 1]), pa.array([str(i), None])], schema=schema)
        for i in range(3)
    ]
    raws = [EncodedBatch.from_record_batch(b).to_flight_data() for b in batches]

    decoded = list(decode_stream((parse_flight_data(r) for r in raws), schema))

    assert [b.to_pylist() for b in decoded] == [b.to_pylist() for b in batches]


def test_decode_stream_refuses_a_second_schema() -> None:
    schema = pa.schema([("a", pa.int64())])
    messages = [parse_flight_data(schema_flight_data(schema))]
    with pytest.raises(ValueError, match="schema"):
        list(decode_stream(iter(messages), schema))


# -- interoperability with pyarrow Flight ------------------------------------

STREAM_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("price", pa.decimal128(12, 3)),
        ("at", pa.timestamp("us", tz="UTC")),
        ("tags", pa.list_(pa.string())),
        ("attrs", pa.map_(pa.string(), pa.int32())),
        ("point", pa.struct([("x", pa.float64()), ("y", pa.float64())])),
        ("ok", pa.bool_()),
        ("day", pa.date32()),
        ("raw", pa.binary()),
    ]
)


def _stream_batch(start: int, rows: int) -> pa.RecordBatch:
    ids = list(range(start, start + rows))
    return pa.record_batch(
        [
            pa.array(ids, pa.int64()),
            pa.array([None if i % 4 == 0 else f"name-{i}" for i in ids]),
            pa.array([decimal.Decimal(i) / 1000 for i in ids], pa.decimal128(12, 3)),
            pa.array(
                [datetime.datetime(2020, 1, 1, tzinfo=UTC) + datetime.timedelta(seconds=i) for i in ids],
                pa.timestamp("us", tz="UTC"),
            ),
            pa.array([[str(i)] * (i % 3) for i in ids], pa.list_(pa.string())),
            pa.array([[("k", i)] if i % 2 else None for i in ids], pa.map_(pa.string(), pa.int32())),
            pa.array([{"x": float(i), "y": -float(i)} for i in ids], STREAM_SCHEMA.field("point").type),
            pa.array([i % 2 == 0 for i in ids]),
            pa.array([datetime.date(2000, 1, 1) + datetime.timedelta(days=i) for i in ids], pa.date32()),
            pa.array([bytes([i % 256]) * (i % 5) for i in ids], pa.binary()),
        ],
        schema=STREAM_SCHEMA,
    )


STREAM_BATCHES = [_stream_batch(0, 10), _stream_batch(10, 0), _stream_batch(10, 257)]


class _WireService(FlightService):
    def __init__(self) -> None:
        self.received: list[tuple[bytes, pa.Schema, list[pa.RecordBatch], list[bytes]]] = []
        self.put_done = threading.Event()

    def do_get(self, request: pb.Ticket, context):  # type: ignore[no-untyped-def]
        if request.ticket == b"empty":
            yield schema_flight_data(STREAM_SCHEMA)
            return
        yield schema_flight_data(STREAM_SCHEMA)
        for batch in STREAM_BATCHES:
            yield EncodedBatch.from_record_batch(batch).to_flight_data()

    def do_put(self, requests, context):  # type: ignore[no-untyped-def]
        first = parse_flight_data(next(requests))
        command = pb.FlightDescriptor.FromString(first.descriptor).cmd
        schema = schema_from_message(first)
        metadata: list[bytes] = []

        def messages():  # type: ignore[no-untyped-def]
            for raw in requests:
                message = parse_flight_data(raw)
                metadata.append(message.app_metadata)
                yield message

        batches = list(decode_stream(messages(), schema))
        self.received.append((command, schema, batches, metadata))
        self.put_done.set()
        yield pb.PutResult(app_metadata=b"rows=%d" % sum(b.num_rows for b in batches))


@pytest.fixture(scope="module")
def wire_server():  # type: ignore[no-untyped-def]
    service = _WireService()
    server, port = start_server(service, "127.0.0.1", 0, max_workers=4)
    client = flight.connect(f"grpc://127.0.0.1:{port}")
    try:
        yield service, client
    finally:
        client.close()
        server.stop(None)


def test_pyarrow_client_reads_a_stream_made_by_these_encoders(wire_server) -> None:  # type: ignore[no-untyped-def]
    _, client = wire_server

    table = client.do_get(flight.Ticket(b"all")).read_all()

    assert table.schema == STREAM_SCHEMA
    assert table.num_rows == 267
    assert table.equals(pa.Table.from_batches(STREAM_BATCHES, schema=STREAM_SCHEMA))


def test_pyarrow_client_reads_batches_one_by_one(wire_server) -> None:  # type: ignore[no-untyped-def]
    _, client = wire_server

    reader = client.do_get(flight.Ticket(b"all"))
    chunks = list(reader)

    assert [c.data.num_rows for c in chunks] == [10, 0, 257]
    for chunk, expected in zip(chunks, STREAM_BATCHES):
        assert chunk.data.equals(expected)


def test_pyarrow_client_reads_a_stream_with_only_a_schema(wire_server) -> None:  # type: ignore[no-untyped-def]
    _, client = wire_server

    table = client.do_get(flight.Ticket(b"empty")).read_all()

    assert table.schema == STREAM_SCHEMA
    assert table.num_rows == 0


def test_pyarrow_client_do_put_is_decoded_by_the_parser(wire_server) -> None:  # type: ignore[no-untyped-def]
    service, client = wire_server
    service.put_done.clear()
    descriptor = flight.FlightDescriptor.for_command(b"ingest-me")
    sent = [_stream_batch(0, 5), _stream_batch(5, 100)]

    writer, reader = client.do_put(descriptor, STREAM_SCHEMA)
    writer.write_batch(sent[0])
    writer.write_with_metadata(sent[1], pa.py_buffer(b"meta!"))
    writer.done_writing()
    ack = reader.read()
    writer.close()

    assert service.put_done.wait(10)
    assert ack is not None and ack.to_pybytes() == b"rows=105"
    command, schema, batches, metadata = service.received[-1]
    assert command == b"ingest-me"
    assert schema == STREAM_SCHEMA
    assert pa.Table.from_batches(batches, schema=schema).equals(pa.Table.from_batches(sent))
    assert metadata == [b"", b"meta!"]


def test_pyarrow_client_do_put_of_a_table_in_chunks(wire_server) -> None:  # type: ignore[no-untyped-def]
    service, client = wire_server
    service.put_done.clear()
    table = pa.Table.from_batches([_stream_batch(0, 1000)])

    writer, reader = client.do_put(flight.FlightDescriptor.for_command(b"t"), table.schema)
    writer.write_table(table, max_chunksize=128)
    writer.done_writing()
    ack = reader.read()
    writer.close()

    assert service.put_done.wait(10)
    assert ack.to_pybytes() == b"rows=1000"
    _, schema, batches, _ = service.received[-1]
    assert len(batches) == 8
    assert pa.Table.from_batches(batches, schema=schema).equals(table)
