"""The executor side: each task pushes its partition's Arrow batches to a node.

:func:`pusher` builds the function given to ``DataFrame.mapInArrow``.  It runs in the
Python workers of executors: it opens a DoPut to the internal Flight server of the
chosen node, sends every batch of the partition (row count in ``app_metadata``), and
yields one summary row: partition, attempt, rows, node, and whether the node kept
this attempt (the first attempt of a partition to complete wins).
"""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import pyarrow as pa

SUMMARY_SCHEMA = pa.schema(
    [
        ("partition", pa.int32()),
        ("attempt", pa.int32()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("node", pa.string()),
        ("committed", pa.bool_()),
    ]
)
SUMMARY_DDL = "partition int, attempt int, rows long, bytes long, node string, committed boolean"


@dataclass(frozen=True)
class PushTarget:
    """A node that accepts pushes: its id, internal URI and host."""

    node_id: str
    internal_uri: str
    host: str


@dataclass(frozen=True)
class PushHeader:
    """What a push says about itself (carried as the DoPut descriptor's command)."""

    query_id: str
    partition: int
    attempt: int
    secret: str

    def encode(self) -> bytes:
        return b"fm1:" + json.dumps(
            {"q": self.query_id, "p": self.partition, "a": self.attempt, "s": self.secret}
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> "PushHeader":
        if not data.startswith(b"fm1:"):
            raise ValueError("not a push header")
        doc = json.loads(data[4:])
        return cls(str(doc["q"]), int(doc["p"]), int(doc["a"]), str(doc["s"]))


_COMPLETE = b"fm-complete:"


def completion_marker(rows: int) -> bytes:
    """The last message of a push: says the partition is whole, and how many rows it has.

    A push is committed only on this marker, never on a bare end of stream, so an
    executor that dies mid-push cannot leave a partial partition behind."""
    return _COMPLETE + struct.pack("<q", rows)


def parse_completion(app_metadata: bytes) -> int | None:
    """Rows announced by a completion marker, or None if this is not one."""
    if len(app_metadata) == len(_COMPLETE) + 8 and app_metadata.startswith(_COMPLETE):
        return int(struct.unpack("<q", app_metadata[len(_COMPLETE):])[0])
    return None


def choose_target(targets: Sequence[PushTarget], partition: int, host: str) -> PushTarget:
    """The node on this host if there is one, else spread partitions evenly."""
    local = [t for t in targets if t.host == host]
    pool = local or list(targets)
    return pool[partition % len(pool)]


_clients: dict[str, object] = {}


def _client(uri: str):  # type: ignore[no-untyped-def]
    import pyarrow.flight as flight

    client = _clients.get(uri)
    if client is None:
        client = flight.connect(uri)
        _clients[uri] = client
    return client


def pusher(
    query_id: str, targets: Sequence[PushTarget], secret: str
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function that pushes each partition to a node."""
    targets = tuple(targets)

    def push(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.flight as flight
        from pyspark import TaskContext

        context = TaskContext.get()
        partition, attempt = context.partitionId(), context.attemptNumber()
        target = choose_target(targets, partition, socket.gethostname())
        header = PushHeader(query_id, partition, attempt, secret)
        descriptor = flight.FlightDescriptor.for_command(header.encode())
        rows = nbytes = 0
        writer = reader = None
        try:
            for batch in batches:
                if writer is None:
                    writer, reader = _client(target.internal_uri).do_put(descriptor, batch.schema)
                writer.write_with_metadata(batch, pa.py_buffer(struct.pack("<q", batch.num_rows)))
                rows += batch.num_rows
                nbytes += batch.nbytes
            if writer is None:  # an empty partition still commits, with no batches
                writer, reader = _client(target.internal_uri).do_put(descriptor, pa.schema([]))
            writer.write_metadata(pa.py_buffer(completion_marker(rows)))
            writer.done_writing()
            ack = reader.read()
            committed = ack is not None and ack.to_pybytes() == b"committed"
        finally:
            if writer is not None:
                writer.close()
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([partition], pa.int32()),
                pa.array([attempt], pa.int32()),
                pa.array([rows], pa.int64()),
                pa.array([nbytes], pa.int64()),
                pa.array([target.node_id]),
                pa.array([committed]),
            ],
            schema=SUMMARY_SCHEMA,
        )

    return push
