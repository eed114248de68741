"""Errors of the distribution layer; each class carries the gRPC status a reader sees.

Codes live on the classes, never on instances: an error that must carry a status chosen
at run time (a Spark failure, one read back from the registry) is built by
:func:`failure`, which picks the class of that status.
"""

from __future__ import annotations

import grpc


class FlightManagerError(Exception):
    """Base of every error raised by flightmanager."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class QueryFailed(FlightManagerError):
    """The Spark job behind a result failed; the message names the cause."""

    code = grpc.StatusCode.INTERNAL


class QueryInvalid(QueryFailed):
    """The statement or its data is wrong (Spark's SQLSTATE classes 42, 22, 21, 23, 07, 54)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class QueryUnsupported(QueryFailed):
    """The statement needs a feature Spark does not have (SQLSTATE class 0A)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class QueryTargetMissing(QueryFailed):
    """A table, schema, function or path the statement names does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class QueryTargetExists(QueryFailed):
    """The object the statement creates exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class QueryCancelled(FlightManagerError):
    code = grpc.StatusCode.CANCELLED


class ResultNotFound(FlightManagerError):
    """No such result on this node, or it expired or was closed."""

    code = grpc.StatusCode.NOT_FOUND


class NotOwner(FlightManagerError):
    code = grpc.StatusCode.PERMISSION_DENIED


class BudgetExceeded(FlightManagerError):
    """The node's spill disk budget is used up."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class PushRefused(FlightManagerError):
    """A push to the internal server without its query's MAC, malformed, or for no known query."""

    code = grpc.StatusCode.PERMISSION_DENIED


class NodeLost(FlightManagerError):
    code = grpc.StatusCode.UNAVAILABLE


class IncompleteResult(FlightManagerError):
    """A node cannot deliver its manifest: a partition it should serve is not here."""

    code = grpc.StatusCode.INTERNAL


class ClientGone(FlightManagerError):
    """The client of a stream went away (the stream ends; nobody is left to tell)."""

    code = grpc.StatusCode.CANCELLED


class ServerBusy(FlightManagerError):
    """Every query slot of the node is taken and its queue is full, or a query waited
    longer than allowed: try again later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unsupported(FlightManagerError):
    """An RPC or action this service does not offer."""

    code = grpc.StatusCode.UNIMPLEMENTED


class MalformedRequest(FlightManagerError):
    """A request that is not the protobuf message its RPC takes."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class MalformedData(FlightManagerError, ValueError):
    """A FlightData message or Arrow IPC data that cannot be read: the sender's fault."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class ZnodeTooLarge(FlightManagerError, ValueError):
    """A write past the largest znode the cluster writes, refused before it reaches ZooKeeper."""

    code = grpc.StatusCode.INVALID_ARGUMENT


#: the class of a query's failure, by the status it ends with
_FAILURES: dict[grpc.StatusCode, type[FlightManagerError]] = {
    cls.code: cls
    for cls in (
        QueryFailed, QueryInvalid, QueryUnsupported, QueryTargetMissing, QueryTargetExists, QueryCancelled,
        NotOwner, BudgetExceeded, NodeLost,
    )
}


def failure(code: grpc.StatusCode | str | None, message: str) -> FlightManagerError:
    """The error of a query that ended with ``code`` (a status, or its name as the registry
    keeps it); a code no failure has is a :class:`QueryFailed`."""
    if isinstance(code, str):
        code = getattr(grpc.StatusCode, code, None)
    cls = _FAILURES.get(code, QueryFailed) if isinstance(code, grpc.StatusCode) else QueryFailed
    return cls(message)
