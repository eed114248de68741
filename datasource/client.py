"""Talking to a Flight SQL server through the ADBC Flight SQL driver.

The driver does the Flight SQL protocol: authentication (HTTP Basic handshake or a
bearer token), TLS, extra call headers, timeouts, ``GetFlightInfo``, reading one
endpoint at its own location (the original connection for an empty or
reuse-connection location) and bulk ingest.  This module opens connections from
:class:`SourceOptions` and turns the driver's errors into :class:`FlightSqlServerError`.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

from datasource.errors import FlightSqlServerError
from datasource.options import SourceOptions

if TYPE_CHECKING:
    from adbc_driver_manager.dbapi import Connection

_MISSING_DRIVER = (
    "the flightsql data source needs the ADBC Flight SQL driver: "
    "pip install 'spark-flightsql[datasource]' (on the driver and every executor)"
)


def driver_options(options: SourceOptions) -> dict[str, str]:
    """The ADBC database options for these settings."""
    from adbc_driver_flightsql import DatabaseOptions as db

    kwargs: dict[str, str] = {}
    if options.user is not None and options.password is not None:
        kwargs["username"] = options.user
        kwargs["password"] = options.password
    if options.token is not None:
        kwargs[db.AUTHORIZATION_HEADER.value] = f"Bearer {options.token}"
    if options.tls_root_certs is not None:
        kwargs[db.TLS_ROOT_CERTS.value] = options.tls_root_certs
    if options.tls_skip_verify:
        kwargs[db.TLS_SKIP_VERIFY.value] = "true"
    if options.tls_override_hostname is not None:
        kwargs[db.TLS_OVERRIDE_HOSTNAME.value] = options.tls_override_hostname
    for name, value in options.headers:
        kwargs[db.RPC_CALL_HEADER_PREFIX.value + name] = value
    if options.timeout is not None:
        for timeout in (db.TIMEOUT_QUERY, db.TIMEOUT_FETCH, db.TIMEOUT_UPDATE):
            kwargs[timeout.value] = repr(options.timeout)
    return kwargs


@contextlib.contextmanager
def connection(options: SourceOptions, action: str) -> Iterator[Connection]:
    """An open ADBC connection; failures to connect or log in name ``action``."""
    try:
        import adbc_driver_flightsql.dbapi as flightsql
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(_MISSING_DRIVER) from None

    with server_errors(options, action), warnings.catch_warnings():
        # Flight SQL has no transactions to turn autocommit off with; that is expected.
        warnings.simplefilter("ignore")
        conn = flightsql.connect(options.uri, db_kwargs=driver_options(options))
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


@contextlib.contextmanager
def server_errors(options: SourceOptions, action: str) -> Iterator[None]:
    """Re-raise the driver's errors as :class:`FlightSqlServerError`, keeping the server's message."""
    from adbc_driver_manager import Error

    try:
        yield
    except Error as exc:
        raise as_server_error(exc, options.uri, action) from None


_STATUS_NAMES = {  # gRPC status codes, as the Flight SQL driver reports them in vendor_code
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}
_DRIVER_PREFIX = re.compile(r"^[A-Z_]+: (\[FlightSQL\] )?")
_DRIVER_SUFFIX = re.compile(r"\s*\((\w+); [^()]*\)(\. Vendor code: -?\d+)?\s*$")


def as_server_error(exc: Exception, uri: str, action: str) -> FlightSqlServerError:
    """The server's status and message out of an ADBC error."""
    vendor = getattr(exc, "vendor_code", None)
    status = _STATUS_NAMES.get(vendor) if isinstance(vendor, int) else None
    if status is None:
        code = getattr(exc, "status_code", None)
        status = getattr(code, "name", None) or "UNKNOWN"
    text = str(exc).strip()
    message = _DRIVER_SUFFIX.sub("", _DRIVER_PREFIX.sub("", text, count=1)) or text
    return FlightSqlServerError(action, uri, status, f"{status}: {message}")
