"""Errors of the distribution layer; each carries the gRPC status a reader sees."""

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
