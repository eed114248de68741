"""The executor side: each task pushes its partition's Arrow batches to a node.

Spark's JVM turns each partition into Arrow IPC record batch messages (its own
Arrow writer, the one ``toArrow()`` uses); :func:`pusher` builds the function a
Python task runs on them.  It opens a DoPut to the internal Flight server of the
chosen node, forwards every message as FlightData (row count in ``app_metadata``)
without decoding it, ends with a completion marker, and yields one summary tuple:
partition, attempt, rows, bytes, node, and whether the node kept this attempt (the
first attempt of a partition to complete wins).
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from flightmanager.tls import TlsFiles


@dataclass(frozen=True)
class PushTarget:
    """A node that accepts pushes: its id, internal URI and host."""

    node_id: str
    internal_uri: str
    host: str


@dataclass(frozen=True)
class PushHeader:
    """What a push says about itself (carried as the DoPut descriptor's command).

    ``mac`` proves the push belongs to the query (:func:`flightmanager.keys.push_mac`);
    no key or secret ever travels in a push."""

    query_id: str
    partition: int
    attempt: int
    mac: str

    def encode(self) -> bytes:
        return _HEADER_V2 + json.dumps(
            {"q": self.query_id, "p": self.partition, "a": self.attempt, "m": self.mac}
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> PushHeader:
        if data.startswith(_HEADER_V1):
            raise ValueError("push header version 1 (it carried the cluster secret) is no longer accepted")
        if not data.startswith(_HEADER_V2):
            raise ValueError("not a push header")
        doc = json.loads(data[len(_HEADER_V2):])
        if not isinstance(doc, dict):
            raise ValueError("not a push header")
        query_id, partition, attempt, mac = doc["q"], doc["p"], doc["a"], doc["m"]
        if not (isinstance(query_id, str) and isinstance(mac, str)
                and type(partition) is int and type(attempt) is int and partition >= 0 and attempt >= 0):
            raise ValueError("push header fields have the wrong types")
        return cls(query_id, partition, attempt, mac)


_HEADER_V1 = b"fm1:"
_HEADER_V2 = b"fm2:"
_COMPLETE = b"fm-complete:"
_PIECE = b"fm-piece:"

#: Fault injection for tests of exactly-once delivery (Spark SQL settings of the
#: session that runs the query).  failAfterCommit: the first attempt of every task
#: fails right after its push was committed, so Spark retries it and the retry must be
#: dropped.  failMidPartition: the first attempt of every task pushed in pieces fails
#: after its second piece, so the retry must skip the pieces already committed.
FAIL_AFTER_COMMIT = "spark.flightsql.test.failAfterCommit"
FAIL_MID_PARTITION = "spark.flightsql.test.failMidPartition"

#: batches in a partition's pieces: the first piece is one batch (readers get it as
#: soon as it is made), each next one twice as many, up to this
MAX_PIECE_BATCHES = 64


@dataclass(frozen=True)
class Faults:
    """Faults injected into pushes (tests only; see FAIL_AFTER_COMMIT)."""

    after_commit: bool = False
    mid_partition: bool = False

    @classmethod
    def of(cls, setting: Callable[[str, str], str | None]) -> Faults:
        def on(key: str) -> bool:
            return (setting(key, "false") or "").lower() == "true"

        return cls(on(FAIL_AFTER_COMMIT), on(FAIL_MID_PARTITION))


if TYPE_CHECKING:
    import grpc


def completion_marker(rows: int) -> bytes:
    """The last message of a push: says the partition is whole, and how many rows it has.

    A push is committed only on this marker, never on a bare end of stream, so an
    executor that dies mid-push cannot leave a partial partition behind."""
    return _COMPLETE + struct.pack("<q", rows)


def piece_marker(rows: int) -> bytes:
    """Ends a piece of a partition pushed in pieces: the batches since the last marker
    (``rows`` rows) commit as one piece, and the push goes on with the next."""
    return _PIECE + struct.pack("<q", rows)


def parse_piece(app_metadata: bytes) -> int | None:
    """Rows announced by a piece marker, or None if this is not one."""
    if len(app_metadata) == len(_PIECE) + 8 and app_metadata.startswith(_PIECE):
        return int(struct.unpack("<q", app_metadata[len(_PIECE):])[0])
    return None


def piece_sizes() -> Iterator[int]:
    """Batches in each piece of a partition pushed in pieces: 1, 2, 4, ... 64, 64, ..."""
    size = 1
    while True:
        yield size
        size = min(size * 2, MAX_PIECE_BATCHES)


def parse_completion(app_metadata: bytes) -> int | None:
    """Rows announced by a completion marker, or None if this is not one."""
    if len(app_metadata) == len(_COMPLETE) + 8 and app_metadata.startswith(_COMPLETE):
        return int(struct.unpack("<q", app_metadata[len(_COMPLETE):])[0])
    return None


def choose_target(targets: Sequence[PushTarget], partition: int, host: str) -> PushTarget:
    """The node on this host if there is one, else spread partitions evenly."""
    return push_order(targets, partition, host)[0]


def push_order(targets: Sequence[PushTarget], partition: int, host: str) -> list[PushTarget]:
    """The nodes to try, best first: the node on this host, then the others, spread evenly
    by partition (an executor whose first choice does not answer pushes to the next)."""
    local = [t for t in targets if t.host == host]
    others = [t for t in targets if t.host != host]
    first = local or others
    start = partition % len(first)
    ordered = first[start:] + first[:start]
    if local:
        start = partition % len(others) if others else 0
        ordered += others[start:] + others[:start]
    return ordered


#: how long an executor waits for a node's internal server to accept a connection
#: before it pushes to the next node
CONNECT_TIMEOUT = 3.0
#: keepalive of a push: a node that stops answering mid-push fails the task within
#: seconds (Spark retries it, and the retry pushes elsewhere)
PUSH_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 1000),
    ("grpc.keepalive_timeout_ms", 3000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


_channels: dict[str, grpc.Channel] = {}

_DO_PUT = "/arrow.flight.protocol.FlightService/DoPut"


def _channel(uri: str, tls: TlsFiles | None = None) -> grpc.Channel:
    """The channel to a node's internal server (one per worker process and node); over
    TLS (``grpc+tls://``) it presents the certificate of ``tls``, read on this host."""
    from flightmanager.tls import channel as open_channel

    channel = _channels.get(uri)
    if channel is None:
        channel = open_channel(
            uri, tls,
            [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1), *PUSH_KEEPALIVE],
        )
        _channels[uri] = channel
    return channel


def _reachable(uri: str, timeout: float, tls: TlsFiles | None = None) -> bool:
    import grpc

    try:
        grpc.channel_ready_future(_channel(uri, tls)).result(timeout=timeout)
        return True
    except grpc.FutureTimeoutError:
        return False


def _do_put(uri: str, tls: TlsFiles | None = None) -> grpc.StreamStreamMultiCallable[bytes, bytes]:
    """A DoPut call to ``uri`` taking and returning raw bytes."""
    return _channel(uri, tls).stream_stream(_DO_PUT, request_serializer=None, response_deserializer=None)


def _first_reachable(order: Sequence[PushTarget], timeout: float, tls: TlsFiles | None = None) -> PushTarget:
    for target in order:
        if _reachable(target.internal_uri, timeout, tls):
            return target
    names = ", ".join(f"{t.node_id} ({t.internal_uri})" for t in order)
    raise ConnectionError(f"no node accepts pushes: none of {names} answered within {timeout:.0f}s")


def _push_messages(
    header: PushHeader, schema: pa.Schema, ipc_messages: Iterator[bytes], totals: list[int], pieces: bool = False,
    stop_after_pieces: int | None = None,
) -> Iterator[bytes]:
    """The FlightData stream of one push: descriptor and schema, batches (with a piece
    marker after each piece, when pushed in pieces), completion marker.

    ``stop_after_pieces`` (fault injection): end the stream after that many pieces,
    without the completion marker, as a push cut short does."""
    from flightmanager.flight import Flight_pb2 as pb
    from flightmanager.flight.wire import EncodedBatch, ipc_parts, schema_flight_data

    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=header.encode())
    yield pb.FlightData(flight_descriptor=descriptor).SerializeToString() + schema_flight_data(schema)
    sizes = piece_sizes()
    size, in_piece, piece_rows, cut = next(sizes), 0, 0, 0
    for message in ipc_messages:
        ipc_header, body = ipc_parts(message)
        rows = pa.ipc.read_record_batch(pa.ipc.read_message(pa.py_buffer(message)), schema).num_rows
        totals[0] += rows
        totals[1] += len(body)
        yield EncodedBatch(ipc_header, body, rows).to_flight_data(app_metadata=struct.pack("<q", rows))
        in_piece, piece_rows = in_piece + 1, piece_rows + rows
        if pieces and in_piece == size:
            yield pb.FlightData(app_metadata=piece_marker(piece_rows)).SerializeToString()
            cut += 1
            if stop_after_pieces is not None and cut >= stop_after_pieces:
                return
            size, in_piece, piece_rows = next(sizes), 0, 0
    yield pb.FlightData(app_metadata=completion_marker(totals[0])).SerializeToString()


class InjectedFailure(RuntimeError):
    """Raised by the fault injection of FAIL_AFTER_COMMIT."""


def pusher(
    query_id: str, targets: Sequence[PushTarget], mac: str, schema: pa.Schema, *, pieces: bool = False,
    faults: Faults = Faults(), tls: TlsFiles | None = None,
) -> Callable[[Iterator[bytes]], Iterator[tuple[int, int, int, int, str, bool]]]:
    """The function each task runs on its partition of the JVM's Arrow batch RDD.

    Elements are Arrow IPC record batch messages made by Spark's own Arrow writer;
    they are forwarded as FlightData without being decoded; ``mac`` is the query's push
    proof (the only credential an executor holds besides ``tls``, the paths of the TLS
    files it presents to internal servers that ask for a client certificate).  ``pieces``: every attempt yields
    the same batches (a deterministic stage), so the partition is pushed in pieces that
    readers get as they commit.  Yields one summary tuple:
    (partition, attempt, rows, bytes, node id, committed).
    """
    targets = tuple(targets)

    def push(ipc_messages: Iterator[bytes]) -> Iterator[tuple[int, int, int, int, str, bool]]:
        from pyspark import TaskContext

        context = TaskContext.get()
        assert context is not None  # runs inside a Spark task
        partition, attempt = context.partitionId(), context.attemptNumber()
        target = _first_reachable(push_order(targets, partition, socket.gethostname()), CONNECT_TIMEOUT, tls)
        header = PushHeader(query_id, partition, attempt, mac)
        totals = [0, 0]
        stop_after = 2 if faults.mid_partition and pieces and attempt == 0 else None
        messages = _push_messages(header, schema, ipc_messages, totals, pieces, stop_after)
        try:
            replies = list(_do_put(target.internal_uri, tls)(messages))
        except Exception as exc:
            if stop_after is not None:
                raise InjectedFailure(f"injected failure of partition {partition} attempt 0 after "
                                      f"{stop_after} pieces") from exc
            raise
        committed = bool(replies) and replies[-1].endswith(b"committed")
        if faults.after_commit and attempt == 0:
            raise InjectedFailure(f"injected failure of partition {partition} attempt 0 after its push")
        yield (partition, attempt, totals[0], totals[1], target.node_id, committed)

    return push
