"""The one place where exceptions become gRPC statuses for Flight SQL clients.

Our own errors carry their code.  Spark's errors are mapped by error class and
SQLSTATE so a client can act on them: a missing table is NOT_FOUND, bad SQL is
INVALID_ARGUMENT with Spark's message (error class, SQLSTATE and position kept,
plan dumps and JVM stacks dropped).
"""

from __future__ import annotations

import grpc

from flightmanager.flight.service import without_paths

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


def spark_status(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """Status for a PySpark exception, or None if ``exc`` is not one."""
    try:
        from pyspark.errors import PySparkException
        from pyspark.errors.exceptions.captured import CapturedException
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return None
    if not isinstance(exc, (CapturedException, PySparkException)):
        return None
    error_class = _call(exc, "getCondition") or _call(exc, "getErrorClass") or ""
    state = _call(exc, "getSqlState") or ""
    message = clean_message(str(exc))
    if error_class.startswith(_NOT_FOUND_CLASSES):
        return grpc.StatusCode.NOT_FOUND, message
    if error_class.startswith(_EXISTS_CLASSES):
        return grpc.StatusCode.ALREADY_EXISTS, message
    if state.startswith("0A") or error_class.startswith("UNSUPPORTED"):
        return grpc.StatusCode.UNIMPLEMENTED, message
    # 54: a statement past one of Spark's limits (too complex to parse, say)
    if state[:2] in ("42", "22", "21", "23", "07", "54") or type(exc).__name__ in (
        "ParseException", "AnalysisException", "IllegalArgumentException",
    ):
        return grpc.StatusCode.INVALID_ARGUMENT, message
    return grpc.StatusCode.INTERNAL, message


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


#: the longest message a client is sent (Spark echoes the statement: a huge one stays in the log)
MAX_MESSAGE = 2000


def _call(exc: BaseException, name: str) -> str | None:
    method = getattr(exc, name, None)
    if method is None:
        return None
    try:
        value = method()
    except Exception:  # noqa: BLE001
        return None
    return str(value) if value else None
