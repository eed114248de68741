"""What a node holds of one result: committed pieces of partitions, in memory or
spilled to disk.

Executors push each partition attempt through a :class:`PartitionWriter`, as one or
more pieces (see :mod:`flightmanager.claims`).  Batches stay in memory while the
node's memory budget allows and go to an Arrow IPC stream file beyond it.  A piece
becomes visible only when it commits, and only the first push of a piece to commit
is kept (``claim``).  Readers (:meth:`ResultSpool.batches`) stream committed pieces as
they arrive and end exactly when the node's manifest has been delivered, or fail with
the query's error.  A spool is re-readable until it is closed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from flightmanager.budget import ByteBudget
from flightmanager.claims import piece_key, piece_of
from flightmanager.errors import ClientGone, FlightManagerError, IncompleteResult, ResultNotFound
from flightmanager.flight.wire import EncodedBatch

log = logging.getLogger(__name__)

#: decides whether a piece may commit (the first push of it anywhere wins):
#: (piece key, attempt, rows, push id, first row, last piece) -> won
Claim = Callable[[int, int, int, str, int, bool], bool]


@dataclass
class StoredPiece:
    """One piece of a partition, pushed by one attempt."""

    key: int
    attempt: int
    #: its first row within the partition
    first: int = 0
    #: this push's own id (its claim names it)
    push: str = field(default_factory=lambda: uuid.uuid4().hex)
    in_memory: list[EncodedBatch] = field(default_factory=list)
    spill_path: Path | None = None
    spilled_rows: list[int] = field(default_factory=list)
    rows: int = 0
    memory_bytes: int = 0
    disk_bytes: int = 0

    def batches(self) -> Iterator[EncodedBatch]:
        yield from self.in_memory
        if self.spill_path is not None:
            with pa.memory_map(str(self.spill_path)) as source:
                reader = pa.ipc.MessageReader.open_stream(source)
                reader.read_next_message()  # the schema
                for rows in self.spilled_rows:
                    message = reader.read_next_message()
                    yield EncodedBatch(
                        message.metadata.to_pybytes(), message.body.to_pybytes(), rows
                    )


class Hangup:
    """Set when a reader's client has gone (an RPC's termination callback calls it)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._wakers: list[Callable[[], None]] = []

    def __call__(self) -> None:
        with self._lock:
            self._event.set()
            wakers = list(self._wakers)
        for wake in wakers:
            wake()

    def on(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` when the client goes (at once, if it has gone)."""
        with self._lock:
            self._wakers.append(wake)
            gone = self._event.is_set()
        if gone:
            wake()

    def is_set(self) -> bool:
        return self._event.is_set()


class PartitionWriter:
    """Receives the batches of one partition attempt, piece by piece; a piece is
    invisible until it commits."""

    def __init__(self, spool: ResultSpool, partition: int, attempt: int) -> None:
        self._spool = spool
        self._stored = StoredPiece(piece_key(partition), attempt)
        #: rows of the pieces committed (or dropped) before this one
        self._before = 0
        self._spill_file: pa.NativeFile | None = None
        self._done = False
        # append, commit and abort may race: an RPC's termination callback aborts
        self._lock = threading.Lock()

    @property
    def rows(self) -> int:
        """Rows received of the partition so far."""
        return self._before + self._stored.rows

    @property
    def piece_rows(self) -> int:
        """Rows received of the current piece."""
        return self._stored.rows

    def append(self, batch: EncodedBatch) -> None:
        with self._lock:
            if self._done:
                raise ResultNotFound("partition attempt already ended")
            self._append(batch)

    def _append(self, batch: EncodedBatch) -> None:
        spool = self._spool
        spool.check_open()
        stored = self._stored
        size = batch.nbytes
        if self._spill_file is None and spool.memory.try_take(size):
            stored.in_memory.append(batch)
            stored.memory_bytes += size
        else:
            spool.disk.take(size)
            stored.disk_bytes += size
            if self._spill_file is None:
                self._open_spill()
            assert self._spill_file is not None
            self._spill_file.write(batch.to_ipc())
            stored.spilled_rows.append(batch.rows)
        stored.rows += batch.rows

    def _open_spill(self) -> None:
        stored = self._stored
        # Unique per writer: a retried stage may reuse an attempt number while an old
        # task of the same partition is still pushing.
        partition, index = piece_of(stored.key)
        name = f"p{partition:06d}-{index:04d}-a{stored.attempt}-{uuid.uuid4().hex[:12]}.arrows"
        path = self._spool.spill_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._spill_file = pa.OSFile(str(path), "wb")
        self._spill_file.write(self._spool.schema.serialize())
        stored.spill_path = path

    def _close_spill(self) -> None:
        if self._spill_file is not None:
            self._spill_file.write(b"\xff\xff\xff\xff\x00\x00\x00\x00")  # end of stream
            self._spill_file.close()
            self._spill_file = None

    def cut(self) -> bool:
        """Commit the batches received since the last cut as a piece, and go on with the
        next piece; False if another push of this piece won (it is dropped)."""
        with self._lock:
            if self._done:
                raise RuntimeError("partition attempt already ended")
            self._close_spill()
            piece = self._stored
            partition, index = piece_of(piece.key)
            self._before += piece.rows
            self._stored = StoredPiece(piece_key(partition, index + 1), piece.attempt, first=self._before)
        return self._spool._commit(piece, last=False)

    def commit(self) -> bool:
        """Commit the last piece of the partition; False if another push of it won."""
        with self._lock:
            if self._done:
                raise RuntimeError("partition attempt already ended")
            self._done = True
            self._close_spill()
        return self._spool._commit(self._stored, last=True)

    def abort(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            self._close_spill()
        self._spool._release(self._stored)


class ResultSpool:
    """The part of one query's result held by this node."""

    def __init__(
        self,
        query_id: str,
        schema: pa.Schema,
        *,
        memory: ByteBudget,
        disk: ByteBudget,
        spill_dir: Path,
        claim: Claim,
        ordered: bool = False,
    ) -> None:
        self.query_id = query_id
        self.schema = schema
        self.memory = memory
        self.disk = disk
        self.spill_dir = spill_dir
        self.ordered = ordered
        self._claim = claim
        self._cond = threading.Condition()
        #: committed pieces by key, and their keys in the order they committed
        self._pieces: dict[int, StoredPiece] = {}
        self._commit_order: list[int] = []
        #: pieces whose claim is being decided now, and by how many pushes
        self._claiming: dict[int, int] = {}
        self._manifest: dict[int, int] | None = None
        self._error: FlightManagerError | None = None
        self._closed: str | None = None
        self.rows_served = 0
        self.bytes_served = 0

    # -- writing --------------------------------------------------------------
    def begin(self, partition: int, attempt: int) -> PartitionWriter:
        self.check_open()
        return PartitionWriter(self, partition, attempt)

    def check_open(self) -> None:
        if self._closed is not None:
            raise ResultNotFound(f"result of query {self.query_id} is {self._closed}")
        if self._error is not None:
            raise self._error

    def _open_for(self, key: int) -> bool:
        return self._closed is None and self._error is None and key not in self._pieces

    def _commit(self, stored: StoredPiece, last: bool) -> bool:
        key = stored.key
        with self._cond:
            usable = self._open_for(key)
            if usable:
                self._claiming[key] = self._claiming.get(key, 0) + 1
        if usable:
            # the claim is a round trip to the arbiter: readers are not held up by it
            won = False
            try:
                won = self._claim(key, stored.attempt, stored.rows, stored.push, stored.first, last)
            finally:
                with self._cond:
                    self._claiming[key] -= 1
                    if not self._claiming[key]:
                        del self._claiming[key]
                    usable = usable and won and self._open_for(key)
                    if usable:
                        self._pieces[key] = stored
                        self._commit_order.append(key)
                    self._check_held()
                    self._cond.notify_all()
        if not usable:
            self._release(stored)
        return usable

    def _release(self, stored: StoredPiece) -> None:
        self.memory.give_back(stored.memory_bytes)
        stored.in_memory.clear()
        stored.memory_bytes = 0
        if stored.spill_path is not None:
            self.disk.give_back(stored.disk_bytes)
            stored.disk_bytes = 0
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stored.spill_path)

    # -- the end of the job ---------------------------------------------------
    def finish(self, manifest: Mapping[int, int]) -> None:
        """The job succeeded; ``manifest`` maps each piece this node serves to its rows.

        Every push has ended by now, so a piece of the manifest that is not here will
        never come: readers fail at once, with the piece named."""
        with self._cond:
            self._manifest = dict(manifest)
            self._check_held()
            self._cond.notify_all()

    def _check_held(self) -> None:
        """Fail readers if the manifest names a piece that is not here and whose
        claim is not being decided (the caller holds the condition)."""
        if self._manifest is None or self._error is not None or self._closed is not None:
            return
        missing = sorted(p for p in self._manifest if p not in self._pieces and p not in self._claiming)
        if missing:
            named = ", ".join(_piece_name(key) for key in missing)
            self._error = IncompleteResult(
                f"result of query {self.query_id} is incomplete: {named} were "
                "assigned to this node but are not held here"
            )

    def fail(self, error: FlightManagerError) -> None:
        with self._cond:
            if self._error is None and self._closed is None:
                self._error = error
            self._cond.notify_all()

    def close(self, reason: str = "closed") -> None:
        with self._cond:
            if self._closed is not None:
                return
            self._closed = reason
            pieces = list(self._pieces.values())
            self._pieces.clear()
            self._cond.notify_all()
        for stored in pieces:
            self._release(stored)

    @property
    def error(self) -> FlightManagerError | None:
        return self._error

    @property
    def finished(self) -> bool:
        return self._manifest is not None

    @property
    def rows_held(self) -> int:
        return sum(p.rows for p in list(self._pieces.values()))

    # -- reading --------------------------------------------------------------
    def _next_piece(self, served: set[int], position: int) -> StoredPiece | None:
        if self.ordered:  # an ordered result's partitions are one piece each
            key = piece_key(position)
            return self._pieces.get(key) if key not in served else None
        for pid in self._commit_order[len(served):]:
            return self._pieces.get(pid)
        return None

    def _complete(self, served: set[int]) -> bool:
        return self._manifest is not None and set(self._manifest) <= served

    def batches(self, hangup: Hangup | None = None) -> Iterator[EncodedBatch]:
        """Every batch of this node's share, as partitions commit; ends with the manifest.

        ``hangup`` is set when the reader's client has gone: a reader waiting for data
        then ends at once instead of holding its thread until the query ends."""
        served: set[int] = set()
        position = 0
        if hangup is not None:
            hangup.on(self._wake)
        while True:
            with self._cond:
                while True:
                    if hangup is not None and hangup.is_set():
                        raise ClientGone(f"the reader of query {self.query_id} went away")
                    self.check_open()
                    stored = self._next_piece(served, position)
                    if stored is not None:
                        break
                    if self._complete(served):
                        self._check_manifest(served)
                        return
                    if self.ordered and self._manifest is not None and piece_key(position) not in self._manifest:
                        # ordered results are served by index; skip partitions held elsewhere
                        position += 1
                        continue
                    self._cond.wait()
            for batch in self._read(stored):
                self.check_open()
                self.rows_served += batch.rows
                self.bytes_served += batch.nbytes
                yield batch
            served.add(stored.key)
            position += 1

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _read(self, stored: StoredPiece) -> Iterator[EncodedBatch]:
        try:
            yield from stored.batches()
        except OSError:
            self.check_open()  # closed under the reader: NOT_FOUND, not an I/O error
            raise

    def _check_manifest(self, served: set[int]) -> None:
        assert self._manifest is not None
        for pid, rows in self._manifest.items():
            held = self._pieces.get(pid)
            if held is None or (rows >= 0 and held.rows != rows):
                raise IncompleteResult(
                    f"result of query {self.query_id} is incomplete: {_piece_name(pid)} "
                    f"should hold {rows} rows, holds {None if held is None else held.rows}"
                )


def _piece_name(key: int) -> str:
    partition, index = piece_of(key)
    return f"partition {partition}" if index == 0 else f"partition {partition} piece {index}"
