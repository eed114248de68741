"""Where a result goes: a file, written batch by batch, or the printed table.

Every sink has the same life: ``begin(schema)``, ``write(batch)`` for each batch,
then ``finish()`` or, on any failure, ``abort()``. A file is written under a
temporary name next to the target and renamed over it only by ``finish()``, so
a failed or interrupted query never leaves a file that looks complete.

| extension | written as |
|---|---|
| .parquet | Parquet; row groups of at most 1 Mi rows or 64 MiB |
| .csv | CSV with a header line (no nested types) |
| .arrow, .feather | Arrow IPC file format (Feather v2) |
| .arrows | Arrow IPC stream format |
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from flightsql.client.errors import OutputError, UsageError
from flightsql.client.options import QueryOptions


class Sink(Protocol):
    started: bool
    rows: int
    bytes: int

    def begin(self, schema: pa.Schema) -> None: ...

    def write(self, batch: pa.RecordBatch) -> None: ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...


class FileSink:
    """A file written batch by batch under a temporary name, renamed at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        self.started = False
        self.rows = 0
        self.bytes = 0
        self._schema: pa.Schema | None = None

    def begin(self, schema: pa.Schema) -> None:
        self._check(schema)
        try:
            self._open(schema)
        except OSError as exc:
            raise OutputError(f"cannot write {str(self.path)!r}: {exc.strerror or exc}") from None
        self._schema = schema
        self.started = True

    def write(self, batch: pa.RecordBatch) -> None:
        try:
            self._write(batch)
        except OSError as exc:
            raise OutputError(f"cannot write {str(self.path)!r}: {exc.strerror or exc}") from None
        self.rows += batch.num_rows
        self.bytes += batch.nbytes

    def finish(self) -> None:
        try:
            self._close()
            os.replace(self.partial, self.path)
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {str(self.path)!r}: {exc.strerror or exc}") from None

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the file is removed anyway
            self._close()
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()

    def _check(self, schema: pa.Schema) -> None:
        """Refuse a schema this format cannot hold."""

    def _open(self, schema: pa.Schema) -> None:
        raise NotImplementedError

    def _write(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class ParquetSink(FileSink):
    """Parquet; batches are gathered into row groups of bounded size."""

    ROW_GROUP_ROWS = 1 << 20
    ROW_GROUP_BYTES = 64 << 20

    def _open(self, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(str(self.partial), schema)
        self._held: list[pa.RecordBatch] = []
        self._held_rows = 0
        self._held_bytes = 0

    def _write(self, batch: pa.RecordBatch) -> None:
        self._held.append(batch)
        self._held_rows += batch.num_rows
        self._held_bytes += batch.nbytes
        if self._held_rows >= self.ROW_GROUP_ROWS or self._held_bytes >= self.ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._held and self._writer is not None:
            table = pa.Table.from_batches(self._held, schema=self._schema or self._held[0].schema)
            self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._held, self._held_rows, self._held_bytes = [], 0, 0

    def _close(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            self._flush()
            self._writer = None
            writer.close()


class CsvSink(FileSink):
    """CSV with a header line; instants are written in UTC."""

    def _check(self, schema: pa.Schema) -> None:
        for field in schema:
            if pa.types.is_nested(field.type):
                raise UsageError(
                    f"CSV cannot hold column {field.name!r} of type {field.type}: "
                    "write .parquet or .arrow instead"
                )

    def _open(self, schema: pa.Schema) -> None:
        import pyarrow.csv as csv

        self._writer: csv.CSVWriter | None = csv.CSVWriter(str(self.partial), schema)

    def _write(self, batch: pa.RecordBatch) -> None:
        assert self._writer is not None
        self._writer.write_batch(batch)

    def _close(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            self._writer = None
            writer.close()


class IpcSink(FileSink):
    """Arrow IPC, in the file format (.arrow, .feather) or the stream format (.arrows)."""

    def __init__(self, path: Path, stream: bool) -> None:
        super().__init__(path)
        self.stream = stream

    def _open(self, schema: pa.Schema) -> None:
        import pyarrow.ipc as ipc

        self._file = pa.OSFile(str(self.partial), "wb")
        self._writer = (ipc.new_stream if self.stream else ipc.new_file)(self._file, schema)

    def _write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def _close(self) -> None:
        writer, file = getattr(self, "_writer", None), getattr(self, "_file", None)
        self._writer = self._file = None
        try:
            if writer is not None:
                writer.close()
        finally:
            if file is not None:
                file.close()


def open_sink(options: QueryOptions) -> Sink:
    """The sink for these options: the output file's format, or the printed table."""
    if options.output is None:
        from flightsql.client.table import TableSink

        return TableSink(options.max_rows)
    fmt = options.output_format
    if fmt == "parquet":
        return ParquetSink(options.output)
    if fmt == "csv":
        return CsvSink(options.output)
    if fmt in ("arrow-file", "arrow-stream"):
        return IpcSink(options.output, stream=fmt == "arrow-stream")
    raise UsageError(f"unknown output format {fmt!r}")
