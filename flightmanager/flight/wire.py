"""Arrow data on the Flight wire.

A Flight stream is a sequence of ``FlightData`` messages, each holding one Arrow
IPC message split in two: the flatbuffer header (``data_header``) and the body
(``data_body``).  Results travel through this project in exactly that form, as
:class:`EncodedBatch`, from the executor's push to the client's read: nodes never
decode record batches they only forward.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from flightmanager.errors import MalformedData

_CONTINUATION = b"\xff\xff\xff\xff"

#: the deepest nesting of types a received schema may have (Arrow's readers and Spark's
#: converters recurse per level)
MAX_TYPE_DEPTH = 64

_ARROW_ERRORS = (pa.ArrowException, OSError, ValueError, TypeError, IndexError, EOFError, struct.error, OverflowError)


def type_depth(kind: pa.DataType) -> int:
    """How deep ``kind`` nests (a primitive type: 0), without recursing."""
    deepest, stack = 0, [(kind, 0)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((current.field(i).type, depth + 1) for i in range(current.num_fields))
    return deepest


def checked_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` if no field nests deeper than :data:`MAX_TYPE_DEPTH`."""
    for field in schema:
        depth = type_depth(field.type)
        if depth > MAX_TYPE_DEPTH:
            raise MalformedData(f"column {field.name!r} nests types {depth} deep; at most {MAX_TYPE_DEPTH} "
                                "levels are accepted")
    return schema


# Protobuf keys of FlightData fields (field number << 3 | wire type 2).
_KEY_DESCRIPTOR = 1
_KEY_HEADER = 2
_KEY_APP_METADATA = 3
_KEY_BODY = 1000


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise MalformedData("truncated FlightData message")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise MalformedData("malformed varint in FlightData message")


def _field(number: int, payload: bytes | memoryview) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload))


@dataclass(frozen=True, slots=True)
class FlightMessage:
    """The fields of one ``FlightData`` message, without copying the body."""

    descriptor: bytes
    header: memoryview
    app_metadata: bytes
    body: memoryview


def parse_flight_data(raw: bytes) -> FlightMessage:
    """Split a serialized ``FlightData`` into its fields (zero-copy for the body)."""
    data = memoryview(raw)
    pos = 0
    descriptor = b""
    app_metadata = b""
    header = memoryview(b"")
    body = memoryview(b"")
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 2:
            length, pos = _read_varint(data, pos)
            value = data[pos : pos + length]
            if len(value) != length:
                raise MalformedData("truncated FlightData message")
            pos += length
            if number == _KEY_HEADER:
                header = value
            elif number == _KEY_BODY:
                body = value
            elif number == _KEY_APP_METADATA:
                app_metadata = bytes(value)
            elif number == _KEY_DESCRIPTOR:
                descriptor = bytes(value)
        elif wire_type == 0:
            _, pos = _read_varint(data, pos)
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
            if pos > len(data):
                raise MalformedData("truncated FlightData message")
        else:
            raise MalformedData(f"unexpected protobuf wire type {wire_type} in FlightData")
    return FlightMessage(descriptor, header, app_metadata, body)


def ipc_parts(message: bytes | memoryview) -> tuple[memoryview, memoryview]:
    """(flatbuffer header, body) of an encapsulated IPC message, without copying."""
    view = memoryview(message)
    offset = 4 if bytes(view[:4]) == _CONTINUATION else 0
    (length,) = struct.unpack_from("<i", view, offset)
    start = offset + 4
    return view[start : start + length], view[start + length :]


def _split_ipc(message: pa.Buffer | bytes) -> tuple[bytes, bytes]:
    """Split an encapsulated IPC message into (flatbuffer header, body)."""
    view = memoryview(message)
    offset = 4 if bytes(view[:4]) == _CONTINUATION else 0
    (length,) = struct.unpack_from("<i", view, offset)
    start = offset + 4
    return bytes(view[start : start + length]), bytes(view[start + length :])


def _join_ipc(header: bytes | memoryview, body: bytes | memoryview) -> bytes:
    """Rebuild an encapsulated IPC message (8-byte aligned) from its parts."""
    padding = (-len(header)) % 8
    return b"".join(
        (_CONTINUATION, struct.pack("<i", len(header) + padding), header, b"\x00" * padding, body)
    )


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """One record batch in its IPC form, ready to go on the wire."""

    header: bytes | memoryview  # views into a larger IPC message, where it was split without copying
    body: bytes | memoryview
    rows: int

    @classmethod
    def from_record_batch(cls, batch: pa.RecordBatch) -> EncodedBatch:
        header, body = _split_ipc(batch.serialize())
        return cls(header, body, batch.num_rows)

    @property
    def nbytes(self) -> int:
        return len(self.header) + len(self.body)

    def to_flight_data(self, app_metadata: bytes = b"") -> bytes:
        parts = [_field(_KEY_HEADER, self.header), self.header]
        if app_metadata:
            parts += [_field(_KEY_APP_METADATA, app_metadata), app_metadata]
        parts += [_field(_KEY_BODY, self.body), self.body]
        return b"".join(parts)

    def to_ipc(self) -> bytes:
        """The encapsulated IPC message (what an Arrow IPC stream file holds)."""
        return _join_ipc(self.header, self.body)

    def to_record_batch(self, schema: pa.Schema) -> pa.RecordBatch:
        message = pa.ipc.read_message(pa.py_buffer(self.to_ipc()))
        if message.type != "record batch":
            raise ValueError(f"expected a record batch IPC message, got {message.type}")
        return pa.ipc.read_record_batch(message, schema)


def schema_to_bytes(schema: pa.Schema) -> bytes:
    """The schema as an encapsulated IPC message (FlightInfo.schema, SchemaResult)."""
    return bytes(schema.serialize().to_pybytes())


def schema_from_bytes(data: bytes) -> pa.Schema:
    """A schema a client sent (an encapsulated IPC message), checked."""
    try:
        schema = pa.ipc.read_schema(pa.py_buffer(data))
    except _ARROW_ERRORS as exc:
        raise MalformedData(f"not an Arrow IPC schema: {exc}") from None
    return checked_schema(schema)


def schema_flight_data(schema: pa.Schema) -> bytes:
    """The first FlightData message of a stream: the schema."""
    header, _ = _split_ipc(schema.serialize())
    return _field(_KEY_HEADER, header) + header


def schema_from_message(message: FlightMessage) -> pa.Schema:
    """The schema a stream starts with, checked."""
    try:
        schema = pa.ipc.read_schema(pa.py_buffer(_join_ipc(message.header, b"")))
    except _ARROW_ERRORS as exc:
        raise MalformedData(f"the stream does not start with an Arrow IPC schema: {exc}") from None
    return checked_schema(schema)


def message_type(message: FlightMessage) -> str:
    """The IPC message type ("schema", "record batch", "dictionary", ...)."""
    try:
        return str(pa.ipc.read_message(pa.py_buffer(_join_ipc(message.header, message.body))).type)
    except _ARROW_ERRORS as exc:
        raise MalformedData(f"not an Arrow IPC message: {exc}") from None


def batch_from_message(message: FlightMessage, rows: int) -> EncodedBatch:
    return EncodedBatch(bytes(message.header), bytes(message.body), rows)


def decode_stream(messages: Iterator[FlightMessage], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Decode record batch messages that follow a schema message: a client's upload, so
    every batch is validated in full (offsets, lengths, UTF-8) before anything reads it."""
    for message in messages:
        kind = message_type(message)
        if kind == "record batch":
            try:
                batch = EncodedBatch(bytes(message.header), bytes(message.body), -1).to_record_batch(schema)
                batch.validate(full=True)
            except _ARROW_ERRORS as exc:
                raise MalformedData(f"a record batch of the stream cannot be read: {exc}") from None
            yield batch
        elif kind == "dictionary":
            raise MalformedData("dictionary-encoded streams are not supported; send plain arrays")
        else:
            raise MalformedData(f"unexpected IPC message {kind!r} in a data stream")
