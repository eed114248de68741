"""PySpark data source "flightsql": read (and write) any Flight SQL server in parallel.

A client of Flight SQL: it imports neither ``flightsql`` nor ``flightmanager``.

    from datasource import FlightSqlDataSource
    spark.dataSource.register(FlightSqlDataSource)
    spark.read.format("flightsql").option("uri", "grpc://host:31337").option("table", "demo.trips").load()
"""

from datasource.errors import (
    FlightSqlIngestRefusedError,
    FlightSqlOptionError,
    FlightSqlSchemaError,
    FlightSqlServerError,
    FlightSqlSourceError,
)
from datasource.source import FlightSqlDataSource

__all__ = [
    "FlightSqlDataSource",
    "FlightSqlIngestRefusedError",
    "FlightSqlOptionError",
    "FlightSqlSchemaError",
    "FlightSqlServerError",
    "FlightSqlSourceError",
]
