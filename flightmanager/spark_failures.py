"""Turn a failed Spark job into an error a reader can act on (cause named, no stack)."""

from __future__ import annotations

import logging

import grpc

from flightmanager.errors import FlightManagerError, QueryFailed
from flightmanager.flight.service import without_paths

log = logging.getLogger(__name__)

#: the longest cause a reader is told; the whole failure is in the coordinator's log
MAX_CAUSE = 1000

#: SQLSTATE classes that mean "the query or its data is wrong", not "the server broke"
_CLIENT_SQLSTATE_CLASSES = {"22", "42", "23", "0A", "21"}


def describe_failure(exc: BaseException, query_id: str) -> FlightManagerError:
    if isinstance(exc, FlightManagerError):
        return exc
    message = spark_message(exc)
    log.info("query %s failed: %s", query_id, str(exc)[:100_000])
    error = QueryFailed(f"query {query_id} failed: {message}")
    state = sql_state(exc)
    if state and state[:2] in _CLIENT_SQLSTATE_CLASSES:
        error.code = grpc.StatusCode.INVALID_ARGUMENT
    return error


def sql_state(exc: BaseException) -> str | None:
    getter = getattr(exc, "getSqlState", None)
    try:
        return getter() if getter else None
    except Exception:  # noqa: BLE001
        return None


def spark_message(exc: BaseException) -> str:
    """The useful part of a Spark or Python-worker exception message: one line, short,
    without the server's paths."""
    line = _first_useful_line(exc)
    line = without_paths(line)
    return line if len(line) <= MAX_CAUSE else line[:MAX_CAUSE - 1] + "…"


def _first_useful_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if "Traceback (most recent call last)" in text:
        # A Python worker failure: keep the exception line, not the traceback.
        lines = [line for line in text.splitlines() if line.strip()]
        for line in reversed(lines):
            if not line.startswith((" ", "\t")) and ":" in line:
                return line.strip()
    return text.splitlines()[0] if text else type(exc).__name__
