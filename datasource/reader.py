"""Reading: one Spark partition per FlightInfo endpoint, each read as Arrow where it lives.

Planning (on the driver) sends the SQL once with ``GetFlightInfo``; the server starts the
query and answers with its endpoints.  Each endpoint, serialized by the driver, becomes
one :class:`EndpointPartition`.  A task opens its own connection and reads its endpoint
at the endpoint's location (the original URI for an empty or reuse-connection
location), so a result spread over many nodes is read by many executors at once.  A
retried task reads the same endpoint again: Flight SQL endpoints stay readable until
their expiration time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import DataSourceReader, InputPartition

from datasource.client import connection, server_errors
from datasource.errors import FlightSqlSchemaError
from datasource.options import SourceOptions
from datasource.sql import Dialect, FilterTranslator, ScanSql

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql.datasource import Filter
    from pyspark.sql.types import StructType


class EndpointPartition(InputPartition):
    """One endpoint of the FlightInfo: the driver's serialized partition and where it lives."""

    def __init__(self, index: int, endpoint: bytes, locations: tuple[str, ...]) -> None:
        super().__init__(index)
        self.index = index
        self.endpoint = endpoint
        self.locations = locations

    def __repr__(self) -> str:
        return f"EndpointPartition(index={self.index}, locations={list(self.locations)})"


class FlightSqlReader(DataSourceReader):
    """Reads a query or table of a Flight SQL server, without filter pushdown."""

    def __init__(
        self, options: SourceOptions, schema: StructType, scan: ScanSql, dialect: Dialect | None,
        filter_columns: Sequence[str] = (),
    ) -> None:
        self.options = options
        self.schema = schema
        self.scan = scan
        self.dialect = dialect
        #: the columns filters may be pushed on: those whose Spark type is the server's
        self.filter_columns = tuple(filter_columns)

    def sql(self) -> str:
        return self.scan.render(self.dialect)

    def partitions(self) -> Sequence[InputPartition]:
        sql = self.sql()
        with (
            connection(self.options, "GetFlightInfo") as conn,
            conn.cursor() as cursor,
            server_errors(self.options, "GetFlightInfo"),
        ):
            endpoints, _ = cursor.adbc_execute_partitions(sql)
        return [EndpointPartition(i, e, _locations(e)) for i, e in enumerate(endpoints)]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        if not isinstance(partition, EndpointPartition):
            return iter(())  # no endpoint at all: Spark asks for its one default partition
        return _read_endpoint(self.options, partition, self.schema)


class FlightSqlFilteringReader(FlightSqlReader):
    """A reader that also pushes filters into the SQL (option ``pushFilters``)."""

    def pushFilters(self, filters: list[Filter]) -> Iterable[Filter]:
        if self.dialect is None:
            return filters
        translator = FilterTranslator(self.dialect, self.filter_columns)
        conditions: list[str] = list(self.scan.conditions)
        kept: list[Filter] = []
        for spark_filter in filters:
            condition = translator.translate(spark_filter)
            if condition is None:
                kept.append(spark_filter)
            else:
                conditions.append(condition)
        self.scan = ScanSql(self.scan.query, self.scan.table, self.scan.columns, tuple(conditions))
        return kept


def _locations(endpoint: bytes) -> tuple[str, ...]:
    """Where an endpoint lives, for display; the driver serializes a one-endpoint FlightInfo."""
    import pyarrow.flight as flight

    try:
        info = flight.FlightInfo.deserialize(endpoint)
    except Exception:  # noqa: BLE001 - another driver encoding: the location is only shown
        return ()
    return tuple(loc.uri.decode() for e in info.endpoints for loc in e.locations)


def _read_endpoint(
    options: SourceOptions, partition: EndpointPartition, schema: StructType
) -> Iterator[pa.RecordBatch]:
    target = arrow_schema(schema)
    action = f"DoGet of endpoint {partition.index}"
    with connection(options, action) as conn, conn.cursor() as cursor, server_errors(options, action):
        cursor.adbc_read_partition(partition.endpoint)
        batches = cursor.fetch_record_batch()
        for batch in batches:
            yield conform(batch, target)


def arrow_schema(schema: StructType) -> pa.Schema:
    """The Arrow schema Spark expects batches of this data source in."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema, timezone="UTC")


def conform(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    """The batch with exactly Spark's column names, types and nullability.

    Columns are matched by name, or by position when the names differ; values are cast
    (a time zone, string width or decimal scale), never reinterpreted.
    """
    import pyarrow as pa

    if batch.schema.equals(target):
        return batch
    names = batch.schema.names
    by_name = all(f.name in names for f in target)
    if not by_name and batch.num_columns != len(target):
        raise FlightSqlSchemaError(f"the server sent columns {names}, expected {target.names}")
    columns: list[Any] = []
    for i, field in enumerate(target):
        column = batch.column(field.name if by_name else i)
        if not column.type.equals(field.type):
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise FlightSqlSchemaError(
                    f"column {field.name!r}: the server sent {column.type}, "
                    f"which does not convert to {field.type}: {exc}"
                ) from None
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=target)
