"""What a node holds of one result: committed partitions, in memory or spilled to disk.

Executors push each partition attempt through a :class:`PartitionWriter`.  Batches stay
in memory while the node's memory budget allows and go to an Arrow IPC stream file
beyond it.  An attempt becomes visible only when it commits, and only the first
attempt of a partition to commit is kept (``claim``).  Readers
(:meth:`ResultSpool.batches`) stream committed partitions as they arrive and end
exactly when the node's manifest has been delivered, or fail with the query's error.
A spool is re-readable until it is closed.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import pyarrow as pa

from flightmanager.budget import ByteBudget
from flightmanager.errors import ClientGone, FlightManagerError, IncompleteResult, ResultNotFound
from flightmanager.flight.wire import EncodedBatch

log = logging.getLogger(__name__)

#: decides whether a partition attempt may commit (the first anywhere wins):
#: (partition, attempt, rows, push id) -> won
Claim = Callable[[int, int, int, str], bool]


@dataclass
class StoredPartition:
    """One committed partition attempt."""

    partition: int
    attempt: int
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
    """Receives the batches of one partition attempt; invisible until committed."""

    def __init__(self, spool: "ResultSpool", partition: int, attempt: int) -> None:
        self._spool = spool
        self._stored = StoredPartition(partition, attempt)
        self._spill_file: pa.NativeFile | None = None
        self._done = False
        # append, commit and abort may race: an RPC's termination callback aborts
        self._lock = threading.Lock()

    @property
    def rows(self) -> int:
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
        path = self._spool.spill_dir / f"p{stored.partition:06d}-a{stored.attempt}-{uuid.uuid4().hex[:12]}.arrows"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._spill_file = pa.OSFile(str(path), "wb")
        self._spill_file.write(self._spool.schema.serialize())
        stored.spill_path = path

    def _close_spill(self) -> None:
        if self._spill_file is not None:
            self._spill_file.write(b"\xff\xff\xff\xff\x00\x00\x00\x00")  # end of stream
            self._spill_file.close()
            self._spill_file = None

    def commit(self) -> bool:
        """Make this attempt visible; False if another attempt of the partition won."""
        with self._lock:
            if self._done:
                raise RuntimeError("partition attempt already ended")
            self._done = True
            self._close_spill()
        return self._spool._commit(self._stored)

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
        self._partitions: dict[int, StoredPartition] = {}
        self._commit_order: list[int] = []
        #: partitions whose claim is being decided now, and by how many pushes
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

    def _open_for(self, partition: int) -> bool:
        return self._closed is None and self._error is None and partition not in self._partitions

    def _commit(self, stored: StoredPartition) -> bool:
        partition = stored.partition
        with self._cond:
            usable = self._open_for(partition)
            if usable:
                self._claiming[partition] = self._claiming.get(partition, 0) + 1
        if usable:
            # the claim is a round trip to the arbiter: readers are not held up by it
            try:
                won = self._claim(partition, stored.attempt, stored.rows, stored.push)
            finally:
                with self._cond:
                    self._claiming[partition] -= 1
                    if not self._claiming[partition]:
                        del self._claiming[partition]
                    usable = usable and won and self._open_for(partition)
                    if usable:
                        self._partitions[partition] = stored
                        self._commit_order.append(partition)
                    self._check_held()
                    self._cond.notify_all()
        if not usable:
            self._release(stored)
        return usable

    def _release(self, stored: StoredPartition) -> None:
        self.memory.give_back(stored.memory_bytes)
        stored.in_memory.clear()
        stored.memory_bytes = 0
        if stored.spill_path is not None:
            self.disk.give_back(stored.disk_bytes)
            stored.disk_bytes = 0
            try:
                os.unlink(stored.spill_path)
            except FileNotFoundError:
                pass

    # -- the end of the job ---------------------------------------------------
    def finish(self, manifest: Mapping[int, int]) -> None:
        """The job succeeded; ``manifest`` maps each partition this node serves to its rows.

        Every push has ended by now, so a partition of the manifest that is not here will
        never come: readers fail at once, with the partition named."""
        with self._cond:
            self._manifest = dict(manifest)
            self._check_held()
            self._cond.notify_all()

    def _check_held(self) -> None:
        """Fail readers if the manifest names a partition that is not here and whose
        claim is not being decided (the caller holds the condition)."""
        if self._manifest is None or self._error is not None or self._closed is not None:
            return
        missing = sorted(p for p in self._manifest if p not in self._partitions and p not in self._claiming)
        if missing:
            self._error = IncompleteResult(
                f"result of query {self.query_id} is incomplete: partitions {missing} were "
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
            partitions = list(self._partitions.values())
            self._partitions.clear()
            self._cond.notify_all()
        for stored in partitions:
            self._release(stored)

    @property
    def error(self) -> FlightManagerError | None:
        return self._error

    @property
    def finished(self) -> bool:
        return self._manifest is not None

    @property
    def rows_held(self) -> int:
        return sum(p.rows for p in list(self._partitions.values()))

    # -- reading --------------------------------------------------------------
    def _next_partition(self, served: set[int], position: int) -> StoredPartition | None:
        if self.ordered:
            return self._partitions.get(position) if position not in served else None
        for pid in self._commit_order[len(served):]:
            return self._partitions.get(pid)
        return None

    def _complete(self, served: set[int]) -> bool:
        return self._manifest is not None and set(self._manifest) <= served

    def batches(self, hangup: "Hangup | None" = None) -> Iterator[EncodedBatch]:
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
                    stored = self._next_partition(served, position)
                    if stored is not None:
                        break
                    if self._complete(served):
                        self._check_manifest(served)
                        return
                    if self.ordered and self._manifest is not None and position not in self._manifest:
                        # ordered results are served by index; skip partitions held elsewhere
                        position += 1
                        continue
                    self._cond.wait()
            for batch in self._read(stored):
                self.check_open()
                self.rows_served += batch.rows
                self.bytes_served += batch.nbytes
                yield batch
            served.add(stored.partition)
            position += 1

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _read(self, stored: StoredPartition) -> Iterator[EncodedBatch]:
        try:
            yield from stored.batches()
        except OSError:
            self.check_open()  # closed under the reader: NOT_FOUND, not an I/O error
            raise

    def _check_manifest(self, served: set[int]) -> None:
        assert self._manifest is not None
        for pid, rows in self._manifest.items():
            held = self._partitions.get(pid)
            if held is None or (rows >= 0 and held.rows != rows):
                raise IncompleteResult(
                    f"result of query {self.query_id} is incomplete: partition {pid} "
                    f"should hold {rows} rows, holds {None if held is None else held.rows}"
                )
