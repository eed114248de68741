"""Errors of the query client, each with the exit code the command returns.

pyarrow turns a gRPC status into one of several exception classes and keeps the
status only in the message text ("Flight returned not found error, with message:
..."). :func:`from_flight_error` recovers the gRPC code name and the server's own
message from it, so the command can print ``CODE: message`` on one line.
"""

from __future__ import annotations

import enum
import re


class ExitCode(enum.IntEnum):
    """What ``flightsql query`` returns; documented in docs/client.md."""

    OK = 0
    QUERY_FAILED = 1
    USAGE = 2
    AUTHENTICATION = 3
    UNREACHABLE = 4
    TIMEOUT = 5
    OUTPUT = 6
    INTERRUPTED = 130


class ClientError(Exception):
    """Base of every error the query client reports; ``str()`` is the one-line message."""

    exit_code: ExitCode = ExitCode.QUERY_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(ClientError):
    """Options that cannot work together, or input the client refuses before querying."""

    exit_code = ExitCode.USAGE


class OutputError(ClientError):
    """The output file cannot be written."""

    exit_code = ExitCode.OUTPUT


class IncompleteResult(ClientError):
    """The streams ended with fewer (or more) rows than the server announced."""


class ServerError(ClientError):
    """A gRPC status from a server: ``code`` is its name, e.g. ``INVALID_ARGUMENT``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.detail = message
        self.exit_code = _EXIT_CODES.get(code, ExitCode.QUERY_FAILED)


_EXIT_CODES = {
    "UNAUTHENTICATED": ExitCode.AUTHENTICATION,
    "PERMISSION_DENIED": ExitCode.AUTHENTICATION,
    "UNAVAILABLE": ExitCode.UNREACHABLE,
    "DEADLINE_EXCEEDED": ExitCode.TIMEOUT,
}

# The wording pyarrow (Arrow C++) uses for each gRPC status it receives.
_PHRASES = {
    "invalid argument": "INVALID_ARGUMENT",
    "timeout": "DEADLINE_EXCEEDED",
    "not found": "NOT_FOUND",
    "already exists": "ALREADY_EXISTS",
    "unauthorized": "PERMISSION_DENIED",
    "resource exhausted": "RESOURCE_EXHAUSTED",
    "precondition failed": "FAILED_PRECONDITION",
    "aborted": "ABORTED",
    "out-of-range": "OUT_OF_RANGE",
    "unimplemented": "UNIMPLEMENTED",
    "internal": "INTERNAL",
    "unavailable": "UNAVAILABLE",
    "data loss": "DATA_LOSS",
    "unauthenticated": "UNAUTHENTICATED",
}
_STATUS = re.compile(
    r"(?:Flight|gRPC) returned (?P<phrase>[a-z -]+?) error, with message: "
    r"|Flight cancelled call, with message: "
    r"|Flight RPC failed with message: "
)
# Context Arrow appends after the server's message; not the server's words.
_TRAILERS = re.compile(r"\.? ?(?:gRPC client debug context|Client context): .*$", re.DOTALL)


def first_line(text: str) -> str:
    """The first non-blank line, stripped: error messages are printed on one line."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def from_flight_error(exc: BaseException) -> ClientError | None:
    """The status behind a pyarrow Flight exception, or None if it carries none."""
    text = str(exc)
    match = _STATUS.search(text)
    if match is None:
        return None
    phrase = match.group("phrase")
    if phrase is not None:
        code = _PHRASES.get(phrase, "UNKNOWN")
    elif text[match.start():].startswith("Flight cancelled"):
        code = "CANCELLED"
    else:
        code = "UNKNOWN"
    message = _TRAILERS.sub("", text[match.end():])
    return ServerError(code, first_line(message))
