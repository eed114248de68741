"""Errors of the Flight SQL layer, each carrying the gRPC status a client sees.

Every error a handler raises derives from :class:`FlightSqlError` (or, from the layer
below, :class:`flightmanager.errors.FlightManagerError`), with its status on its class.
The server turns them into gRPC statuses in exactly one place
(:mod:`flightmanager.flight.status`), Spark's errors through the one classifier
(:mod:`flightmanager.spark_errors`); anything else that escapes a handler is logged with
its traceback and reported as INTERNAL without leaking internals to the client.
"""

from __future__ import annotations

import grpc


class FlightSqlError(Exception):
    """Base of every error the Flight SQL layer reports to a client."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(FlightSqlError):
    """The request is malformed or the SQL does not analyse."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(FlightSqlError):
    """A table, ticket, handle or session that does not exist (or expired)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(FlightSqlError):
    """The object to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(FlightSqlError):
    """The caller is known but may not use this object."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(FlightSqlError):
    """No credentials, wrong credentials, or an expired token."""

    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(FlightSqlError):
    """A budget (memory, disk, concurrent queries) is used up."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(FlightSqlError):
    """The request lost to a concurrent one (another write into the same table); try again."""

    code = grpc.StatusCode.ABORTED


class Unimplemented(FlightSqlError):
    """A command, action or option this server does not support."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Cancelled(FlightSqlError):
    """The query was cancelled."""

    code = grpc.StatusCode.CANCELLED


class Unavailable(FlightSqlError):
    """A node or service needed for the request is gone."""

    code = grpc.StatusCode.UNAVAILABLE


class Internal(FlightSqlError):
    """A failure inside the server that the client cannot fix."""

    code = grpc.StatusCode.INTERNAL
