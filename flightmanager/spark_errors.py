"""The one classifier of Spark's errors: which gRPC status a client sees, and what it is told.

Spark names what went wrong by error class (``TABLE_OR_VIEW_NOT_FOUND``) and SQLSTATE
(``42P01``).  A statement refused before it runs and a job that fails while it runs are
classified by the same table, so a client can act on either: a missing table is
NOT_FOUND, bad SQL or bad data INVALID_ARGUMENT, an unsupported feature UNIMPLEMENTED.
Messages keep Spark's error class, SQLSTATE and position and drop plan dumps, JVM stacks
and the server's paths.
"""

from __future__ import annotations

import logging

import grpc

from flightmanager.errors import FlightManagerError, failure
from flightmanager.flight.status import without_paths

log = logging.getLogger(__name__)

_NOT_FOUND_CLASSES = (
    "TABLE_OR_VIEW_NOT_FOUND",
    "SCHEMA_NOT_FOUND",
    "CATALOG_NOT_FOUND",
    "NO_SUCH_NAMESPACE",
    "ROUTINE_NOT_FOUND",
    "UNRESOLVED_ROUTINE",
    "PATH_NOT_FOUND",
)
_EXISTS_CLASSES = ("TABLE_OR_VIEW_ALREADY_EXISTS", "SCHEMA_ALREADY_EXISTS", "TEMP_TABLE_OR_VIEW_ALREADY_EXISTS")
#: SQLSTATE classes that mean "the statement or its data is wrong", not "the server broke";
#: 54: a statement past one of Spark's limits (too complex to parse, say)
_INVALID_SQLSTATE_CLASSES = ("42", "22", "21", "23", "07", "54")
_INVALID_TYPES = ("ParseException", "AnalysisException", "IllegalArgumentException")

#: the longest message a client is sent for a refused statement (Spark echoes the
#: statement: a huge one stays in the log)
MAX_MESSAGE = 2000
#: the longest cause a reader of a failed job is told; the whole failure is in the log
MAX_CAUSE = 1000


def spark_code(exc: BaseException) -> grpc.StatusCode | None:
    """The status of a PySpark exception, or None if ``exc`` is not one."""
    try:
        from pyspark.errors import PySparkException
        from pyspark.errors.exceptions.captured import CapturedException
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return None
    if not isinstance(exc, (CapturedException, PySparkException)):
        return None
    error_class = _call(exc, "getCondition") or _call(exc, "getErrorClass") or ""
    state = _call(exc, "getSqlState") or ""
    if error_class.startswith(_NOT_FOUND_CLASSES):
        return grpc.StatusCode.NOT_FOUND
    if error_class.startswith(_EXISTS_CLASSES):
        return grpc.StatusCode.ALREADY_EXISTS
    if state.startswith("0A") or error_class.startswith("UNSUPPORTED"):
        return grpc.StatusCode.UNIMPLEMENTED
    if state[:2] in _INVALID_SQLSTATE_CLASSES or type(exc).__name__ in _INVALID_TYPES:
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


def spark_status(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """Status and message of a statement Spark refused, or None if ``exc`` is not Spark's."""
    code = spark_code(exc)
    return None if code is None else (code, clean_message(str(exc)))


def describe_failure(exc: BaseException, query_id: str) -> FlightManagerError:
    """The error a reader of a failed job gets: the class of its status, the cause in one line."""
    if isinstance(exc, FlightManagerError):
        return exc
    log.info("query %s failed: %s", query_id, str(exc)[:100_000])
    return failure(spark_code(exc) or grpc.StatusCode.INTERNAL, f"query {query_id} failed: {spark_message(exc)}")


def clean_message(text: str) -> str:
    """Spark's message without the logical plan dump, the JVM stack or the server's paths."""
    lines: list[str] = []
    for line in text.strip().splitlines():
        if line.startswith(("'", "+-", ":-", "JVM stacktrace", "\tat ", "   +-")):
            break
        lines.append(line.rstrip())
    while lines and not lines[-1].strip():
        lines.pop()
    message = without_paths("\n".join(lines).rstrip(";"))
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE - 1] + "…"


def spark_message(exc: BaseException) -> str:
    """The useful part of a Spark or Python-worker exception message: one line, short,
    without the server's paths."""
    line = without_paths(_first_useful_line(exc))
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


def _call(exc: BaseException, name: str) -> str | None:
    method = getattr(exc, name, None)
    if method is None:
        return None
    try:
        value = method()
    except Exception:  # noqa: BLE001 - a getter of an exception that cannot answer
        return None
    return str(value) if value else None
