"""Read every endpoint of a FlightInfo, several at a time, as one stream of batches.

A multi-node server answers with one endpoint per node, each at its own location.
:class:`ResultStreams` reads up to ``parallel`` of them at once on worker threads
(pyarrow releases the GIL while it reads) and hands their record batches to the
caller's thread through a bounded queue, so at most about ``3 * parallel``
batches are in memory however large the result is. An ordered result (whose
``FlightInfo.ordered`` is set) is read one endpoint at a time, in order.

Any failure (an endpoint's stream, a schema that differs between endpoints)
stops every other stream and is raised to the caller; a result is never
silently partial.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.flight as flight

from flightsql.client.connection import Connection, as_client_error
from flightsql.client.errors import ClientError, ServerError

POLL_SECONDS = 0.1
JOIN_SECONDS = 5.0


@dataclass
class EndpointState:
    """What has been read from one endpoint."""

    index: int
    location: str = ""
    rows: int = 0
    bytes: int = 0
    done: bool = False


@dataclass(frozen=True)
class _Opened:
    index: int
    schema: pa.Schema


@dataclass(frozen=True)
class _Batch:
    index: int
    batch: pa.RecordBatch


@dataclass(frozen=True)
class _Done:
    index: int


@dataclass(frozen=True)
class _Failed:
    index: int
    error: BaseException


_Message = _Opened | _Batch | _Done | _Failed


class ResultStreams:
    """Iterate over the record batches of every endpoint; a context manager.

    ``schema`` starts as the FlightInfo's schema (if it has one) and otherwise
    becomes the first stream's; every batch yielded has exactly that schema.
    """

    def __init__(self, connection: Connection, info: flight.FlightInfo, parallel: int = 8,
                 on_endpoint_done: Callable[[EndpointState], None] | None = None) -> None:
        self._connection = connection
        self._endpoints = list(info.endpoints)
        self.endpoints = [EndpointState(i) for i in range(len(self._endpoints))]
        self.ordered = bool(info.ordered)
        workers = 1 if self.ordered else max(1, min(parallel, len(self._endpoints)))
        self._workers = workers if self._endpoints else 0
        schema = info.schema
        self.schema: pa.Schema | None = schema if schema is not None and len(schema) else None
        self._on_endpoint_done = on_endpoint_done
        self._messages: queue.Queue[_Message] = queue.Queue(maxsize=2 * max(workers, 1))
        self._pending: queue.Queue[int] = queue.Queue()
        for i in range(len(self._endpoints)):
            self._pending.put(i)
        self._stop = threading.Event()
        self._readers: dict[int, flight.FlightStreamReader] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ResultStreams:
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"endpoint-reader-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Cancel the open streams and wait (bounded) for the workers to end."""
        self._stop.set()
        with self._lock:
            readers = list(self._readers.values())
        for reader in readers:
            with contextlib.suppress(Exception):  # a stream that ended cannot be cancelled
                reader.cancel()
        while True:  # unblock workers waiting to put
            try:
                self._messages.get_nowait()
            except queue.Empty:
                break
        for thread in self._threads:
            thread.join(JOIN_SECONDS)

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.endpoints)

    # ------------------------------------------------------------------ workers

    def _put(self, message: _Message) -> bool:
        while not self._stop.is_set():
            try:
                self._messages.put(message, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                index = self._pending.get_nowait()
            except queue.Empty:
                return
            try:
                self._read(index)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self._put(_Failed(index, exc))
                return

    def _read(self, index: int) -> None:
        reader, location = self._connection.do_get(self._endpoints[index])
        self.endpoints[index].location = location
        with self._lock:
            self._readers[index] = reader
        try:
            if not self._put(_Opened(index, reader.schema)):
                return
            while not self._stop.is_set():
                try:
                    chunk = reader.read_chunk()
                except StopIteration:
                    break
                if chunk.data is not None and not self._put(_Batch(index, chunk.data)):
                    return
            self._put(_Done(index))
        finally:
            with self._lock:
                self._readers.pop(index, None)

    # ------------------------------------------------------------------ caller

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        remaining = len(self._endpoints)
        while remaining:
            message = self._messages.get()
            if isinstance(message, _Failed):
                raise self._failure(message)
            state = self.endpoints[message.index]
            if isinstance(message, _Opened):
                self._check_schema(message)
            elif isinstance(message, _Batch):
                batch = message.batch
                assert self.schema is not None
                if batch.schema is not self.schema and not batch.schema.equals(self.schema, check_metadata=True):
                    batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
                state.rows += batch.num_rows
                state.bytes += batch.nbytes
                yield batch
            else:
                state.done = True
                remaining -= 1
                if self._on_endpoint_done is not None:
                    self._on_endpoint_done(state)

    def _check_schema(self, message: _Opened) -> None:
        if self.schema is None:
            self.schema = message.schema
        elif not message.schema.equals(self.schema, check_metadata=False):
            raise ClientError(
                f"{self._where(message.index)} sent a schema that differs from the result's: "
                f"{_describe(message.schema)} instead of {_describe(self.schema)}"
            )

    def _where(self, index: int) -> str:
        location = self.endpoints[index].location or self._connection.options.uri
        return f"endpoint {index + 1} of {len(self._endpoints)} at {location}"

    def _failure(self, message: _Failed) -> ClientError:
        error = as_client_error(message.error, self._connection.deadline)
        if len(self._endpoints) > 1 and isinstance(error, ServerError):
            error = ServerError(error.code, f"{error.detail} ({self._where(message.index)})")
        return error


def _describe(schema: pa.Schema) -> str:
    return "(" + ", ".join(f"{f.name} {f.type}" for f in schema) + ")"
