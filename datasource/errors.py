"""Errors of the ``flightsql`` data source; every one derives from :class:`FlightSqlSourceError`.

A failure the server reports (bad SQL, missing table, wrong credentials, a refused
ingest) becomes a :class:`FlightSqlServerError` that carries the server's own message
and its status, raised without the client library's exception chained to it, so a Spark
user reads the server's words and not a stack of unrelated frames.
"""

from __future__ import annotations


class FlightSqlSourceError(Exception):
    """Base of every error the data source raises."""


class FlightSqlOptionError(FlightSqlSourceError, ValueError):
    """The data source options are missing, contradictory or malformed."""


class FlightSqlServerError(FlightSqlSourceError):
    """The Flight SQL server refused a request or could not be reached.

    ``status`` names the status the client saw (``INVALID_ARGUMENT``, ``NOT_FOUND``,
    ``UNAUTHENTICATED``, ``UNAVAILABLE``, ...), ``message`` is the server's message.
    """

    def __init__(self, action: str, uri: str, status: str, message: str) -> None:
        super().__init__(f"{action} at {uri} failed: {message}")
        self.action = action
        self.uri = uri
        self.status = status
        self.message = message


class FlightSqlIngestRefusedError(FlightSqlServerError):
    """The server does not accept bulk ingest (``CommandStatementIngest``)."""


class FlightSqlSchemaError(FlightSqlSourceError):
    """A result column has a type Spark cannot hold, or batches do not fit the schema."""
