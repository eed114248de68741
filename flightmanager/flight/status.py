"""The one place where exceptions become gRPC statuses, and where a failed call is logged.

Errors carry their status on their class (``code``, a ``grpc.StatusCode``); a service may
add a mapper for exceptions it knows but did not raise (Spark's, :mod:`flightmanager.spark_errors`).
Anything else is a bug: it is logged whole under a reference, and the client gets the
reference and one short line, never a traceback or a path of the server's.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import NamedTuple

import grpc

log = logging.getLogger(__name__)

ErrorMapper = Callable[[BaseException], "tuple[grpc.StatusCode, str] | None"]

#: worth an operator's attention: who was refused
_REFUSALS = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
#: the node is short of something, or lost a race: it copes, but an operator should know
_STRAINS = frozenset({
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
})


class Status(NamedTuple):
    code: grpc.StatusCode
    message: str

    @property
    def log_level(self) -> int:
        """How loud the node logs a call that ended with this status. A known failure
        inside the server (a query's failed job) was logged where it happened, with its
        query; an unknown one is logged with its traceback by :func:`status_of`."""
        if self.code in _REFUSALS:
            return logging.INFO
        if self.code in _STRAINS:
            return logging.WARNING
        return logging.DEBUG


def known_status(exc: BaseException, mapper: ErrorMapper | None = None) -> Status | None:
    """The status an exception names (its class's ``code``, or the mapper's), or None if it names none."""
    if mapper is not None:
        mapped = mapper(exc)
        if mapped is not None:
            return Status(*mapped)
    code = getattr(exc, "code", None)
    if isinstance(code, grpc.StatusCode):
        return Status(code, str(getattr(exc, "message", None) or exc))
    if type(exc) is grpc.RpcError:
        # what grpcio raises to a handler reading the requests of a call its client ended
        return Status(grpc.StatusCode.CANCELLED, "the client ended the call")
    return None


def status_of(exc: BaseException, mapper: ErrorMapper | None = None, call: str | None = None) -> Status:
    """The status for an exception raised by a handler, logged once.

    An unexpected failure is logged whole under a reference; the client gets the
    reference and one short line (no stack, no path of the server's).  A known one is
    logged in one line, when the name of the ``call`` is given, at its status's level."""
    known = known_status(exc, mapper)
    if known is not None:
        if call is not None and log.isEnabledFor(known.log_level):
            first = known.message.splitlines()[0][:500] if known.message else ""
            log.log(known.log_level, "%s failed: %s: %s", call, known.code.name, first)
        return known
    reference = secrets.token_hex(4)
    log.error("internal error %s", reference, exc_info=exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    summary = without_paths(first)[:200]
    return Status(
        grpc.StatusCode.INTERNAL,
        f"internal error {reference} (the node's log has the details): "
        f"{type(exc).__name__}{': ' + summary if summary else ''}",
    )


_STORAGE_URI = re.compile(r"\b(?:file|hdfs|s3a?|s3n|gs|abfss?|wasbs?|viewfs|jar):(?://[^/\s]*)?/(?:[^/\s'\"`]*/)*")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^/\s'\"`:]+/)+")


def without_paths(text: str) -> str:
    """``text`` with the directories of absolute paths and storage URIs left out
    (``…/name``): the layout of a node's disks is no client's business."""
    return _ABSOLUTE_PATH.sub("…/", _STORAGE_URI.sub("…/", text))
