"""Writing: every Spark partition streams its rows with Flight SQL bulk ingest.

The table is made ready once, on the driver, before any task runs (when Spark asks the
data source for its writer):

- ``overwrite``: the table is replaced by an empty one with the DataFrame's schema
  (ingest mode ``replace`` of one empty batch);
- ``append``: the table is created, empty, if it does not exist (mode ``create_append``).

Then each task appends its partition as one ``CommandStatementIngest`` stream (mode
``append``), many at once.  No task creates or drops anything, so parallel tasks never
race over the table's existence.

Flight SQL ingest has no transaction spanning streams, so a job is not atomic: if it
fails, the partitions already appended stay, and after ``overwrite`` the old rows are
gone.  A partition is appended by one stream; on a server that loads a stream all or
nothing, a task that fails before its stream completes leaves nothing, and a retried
task appends its partition again only if the first attempt's stream had completed (the
task failed after it).  Speculative copies of a task would each append: leave
``spark.speculation`` off (the default) for writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Literal

from pyspark.sql.datasource import DataSourceArrowWriter, WriterCommitMessage

from datasource.client import as_server_error, connection
from datasource.errors import FlightSqlIngestRefusedError
from datasource.options import SourceOptions, TableName

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql.types import StructType

IngestMode = Literal["append", "create", "replace", "create_append"]
_REFUSED = ("UNIMPLEMENTED", "NOT_IMPLEMENTED")


@dataclass
class IngestCommit(WriterCommitMessage):
    """What one task appended."""

    partition: int
    attempt: int
    rows: int  # -1 when the server does not report it


class FlightSqlWriter(DataSourceArrowWriter):
    """Built on the driver (where :meth:`prepare` runs), then shipped to every write task."""

    def __init__(self, options: SourceOptions, table: TableName, schema: StructType, overwrite: bool) -> None:
        self.options = options
        self.table = table
        self.schema = schema
        self.overwrite = overwrite

    def prepare(self) -> None:
        """On the driver, once: replace the table (overwrite) or make sure it exists (append)."""
        import pyarrow as pa
        from pyspark.sql.pandas.types import to_arrow_schema

        arrow = to_arrow_schema(self.schema, timezone="UTC")
        # one empty batch, not an empty stream: not every server can ingest a stream without batches
        empty = pa.RecordBatch.from_pylist([], schema=arrow)
        ingest(self.options, self.table, pa.RecordBatchReader.from_batches(arrow, [empty]),
               "replace" if self.overwrite else "create_append")

    def write(self, iterator: Iterator[pa.RecordBatch]) -> IngestCommit:
        import pyarrow as pa
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else -1
        attempt = context.attemptNumber() if context is not None else 0
        batches = (b for b in iterator if b.num_rows > 0)
        first = next(batches, None)
        if first is None:
            return IngestCommit(partition, attempt, 0)
        stream = pa.RecordBatchReader.from_batches(first.schema, chain([first], batches))
        rows = ingest(self.options, self.table, stream, "append")
        return IngestCommit(partition, attempt, rows)

    def commit(self, messages: list[WriterCommitMessage | None]) -> None:
        """Every partition's stream is complete on the server: nothing is left to do."""

    def abort(self, messages: list[WriterCommitMessage | None]) -> None:
        """Streams that completed cannot be taken back (see the module's notes)."""


def ingest(options: SourceOptions, table: TableName, data: pa.RecordBatchReader, mode: IngestMode) -> int:
    """One ``CommandStatementIngest`` stream; the number of rows written, or -1."""
    from adbc_driver_manager import Error

    action = f"bulk ingest ({mode}) into {'.'.join(table.parts)}"
    with connection(options, action) as conn, conn.cursor() as cursor:
        try:
            rows = cursor.adbc_ingest(
                table.table, data, mode=mode, catalog_name=table.catalog, db_schema_name=table.schema,
            )
        except Error as exc:
            error = as_server_error(exc, options.uri, action)
            if error.status in _REFUSED:
                raise FlightSqlIngestRefusedError(
                    action, options.uri, error.status,
                    f"the server does not accept bulk ingest (CommandStatementIngest), so the flightsql "
                    f"data source cannot write to it: {error.message}",
                ) from None
            raise error from None
    return int(rows) if rows is not None else -1

