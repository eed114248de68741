"""The ``flightsql`` data source: reads and writes any Flight SQL server from Spark.

Register it once per session, then use it by name::

    from datasource import FlightSqlDataSource
    spark.dataSource.register(FlightSqlDataSource)
    df = spark.read.format("flightsql").option("uri", "grpc://host:31337").option("query", "SELECT ...").load()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql.datasource import DataSource, DataSourceReader, DataSourceWriter
from pyspark.sql.types import DecimalType, IntegerType, LongType, ShortType

from datasource.client import connection, server_errors
from datasource.errors import FlightSqlSchemaError, FlightSqlServerError
from datasource.options import SourceOptions, parse_options
from datasource.reader import FlightSqlFilteringReader, FlightSqlReader
from datasource.sql import Dialect, ScanSql
from datasource.sqlinfo import identifier_quote
from datasource.writer import FlightSqlWriter

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql.types import StructType

NAME = "flightsql"


class FlightSqlDataSource(DataSource):
    """Spark data source ``flightsql``; see ``docs/datasource.md`` for its options."""

    @classmethod
    def name(cls) -> str:
        return NAME

    def schema(self) -> StructType:
        """The result's schema, as the server describes it (``GetSchema``), without running it."""
        options = parse_options(self.options, "read")
        scan = _scan(options)
        dialect = self._dialect(options) if scan.needs_dialect() else None
        arrow = _server_schema(options, scan.render(dialect))
        self._server_columns = tuple(arrow.names)
        return spark_schema(arrow)

    def reader(self, schema: StructType) -> DataSourceReader:
        options = parse_options(self.options, "read")
        names = tuple(schema.fieldNames())
        # a schema the user gave (schema() was not called, or differs) selects its own columns
        columns = None if names == getattr(self, "_server_columns", None) else names
        scan = _scan(options, columns)
        if not options.push_filters:
            return FlightSqlReader(options, schema, scan, self._dialect(options) if scan.needs_dialect() else None)
        dialect = self._dialect(options)
        filter_columns = names
        if columns is not None:
            # a given schema may retype a column; a filter on it means what Spark means only
            # where the type is the server's own
            server = spark_schema(_server_schema(options, _scan(options).render(dialect)))
            types = {f.name: f.dataType for f in server.fields}
            filter_columns = tuple(f.name for f in schema.fields if types.get(f.name) == f.dataType)
        return FlightSqlFilteringReader(options, schema, scan, dialect, filter_columns)

    def writer(self, schema: StructType, overwrite: bool) -> DataSourceWriter:
        options = parse_options(self.options, "write")
        assert options.table is not None  # parse_options requires it for a write
        writer = FlightSqlWriter(options, options.table, schema, overwrite)
        writer.prepare()
        return writer

    def _dialect(self, options: SourceOptions) -> Dialect:
        quote = getattr(self, "_identifier_quote", None)
        if quote is None:
            quote = identifier_quote(options)
            self._identifier_quote = quote
        return Dialect(quote)


def _scan(options: SourceOptions, columns: tuple[str, ...] | None = None) -> ScanSql:
    return ScanSql(query=options.query, table=options.table, columns=columns)


def _server_schema(options: SourceOptions, sql: str) -> pa.Schema:
    with connection(options, "GetSchema") as conn, conn.cursor() as cursor:
        try:
            with server_errors(options, "GetSchema"):
                return cursor.adbc_execute_schema(sql)
        except FlightSqlServerError as exc:
            if exc.status not in ("UNIMPLEMENTED", "NOT_IMPLEMENTED"):
                raise exc from None
        # no GetSchema on this server: the FlightInfo of the query carries the schema too
        with server_errors(options, "GetFlightInfo"):
            _, schema = cursor.adbc_execute_partitions(sql)
        return schema


_UNSIGNED = {  # Spark has no unsigned integers: the next wider type holds every value
    "uint8": ShortType(), "uint16": IntegerType(), "uint32": LongType(), "uint64": DecimalType(20, 0),
}


def spark_schema(arrow: pa.Schema) -> StructType:
    """Spark's schema for an Arrow result schema; a type Spark lacks is named with its column."""
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StructField, StructType

    fields = []
    for field in arrow:
        try:
            data_type = _UNSIGNED.get(str(field.type)) or from_arrow_type(field.type, prefer_timestamp_ntz=True)
        except Exception as exc:  # noqa: BLE001 - PySpark raises several kinds for this
            raise FlightSqlSchemaError(
                f"column {field.name!r} has Arrow type {field.type}, which Spark cannot hold ({exc}); "
                f"cast it in the query"
            ) from None
        fields.append(StructField(field.name, data_type, nullable=field.nullable))
    return StructType(fields)
