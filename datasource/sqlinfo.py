"""Ask the server how it quotes identifiers (Flight SQL ``GetSqlInfo``, SQL_IDENTIFIER_QUOTE_CHAR).

SQL the data source writes itself (a table read, pushed filters, a chosen column list)
must quote identifiers the server's way: ANSI servers use ``"``, Spark and MySQL use
backticks, and in Spark ``"name"`` is a string literal, so a wrong guess would silently
change results.  ADBC exposes only a few SqlInfo values, so this one request goes
through pyarrow's Flight client with the same credentials, TLS settings and headers.

``CommandGetSqlInfo`` is encoded here by hand: a ``google.protobuf.Any`` whose value is
the message ``{repeated uint32 info = 1}``; the answer is a table of ``info_name`` and a
dense-union ``value``.
"""

from __future__ import annotations

from typing import Any

from datasource.errors import FlightSqlServerError
from datasource.options import SourceOptions

SQL_IDENTIFIER_QUOTE_CHAR = 504
ANSI_QUOTE = '"'
_DEFAULT_TIMEOUT = 60.0  # seconds for each call of this one small request
_TYPE_URL = b"type.googleapis.com/arrow.flight.protocol.sql.CommandGetSqlInfo"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _length_delimited(field_number: int, payload: bytes) -> bytes:
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def get_sql_info_command(*info: int) -> bytes:
    """The serialized ``Any`` holding ``CommandGetSqlInfo(info=...)``."""
    packed = b"".join(_varint(i) for i in info)
    message = _length_delimited(1, packed) if info else b""
    return _length_delimited(1, _TYPE_URL) + _length_delimited(2, message)


def identifier_quote(options: SourceOptions) -> str:
    """The server's identifier quote; ``"`` when the server does not say.

    The option ``identifierQuote`` wins and skips the request.  A server that does not
    implement ``GetSqlInfo`` or leaves the value out is taken to speak ANSI SQL; any
    other failure is an error, since guessing could change what a query means.
    """
    if options.identifier_quote is not None:
        return options.identifier_quote
    import pyarrow as pa

    try:
        values = _sql_info(options, SQL_IDENTIFIER_QUOTE_CHAR)
    except pa.ArrowNotImplementedError:  # how pyarrow reports UNIMPLEMENTED
        return ANSI_QUOTE
    except pa.ArrowException as exc:  # Flight errors, and statuses pyarrow maps to Arrow errors
        status = _status_of(exc)
        message = str(exc).split(". Detail:", 1)[0].strip()
        raise FlightSqlServerError("GetSqlInfo", options.uri, status, f"{status}: {message}") from None
    value = values.get(SQL_IDENTIFIER_QUOTE_CHAR)
    return value if isinstance(value, str) and value.strip() else ANSI_QUOTE


def _sql_info(options: SourceOptions, *info: int) -> dict[int, Any]:
    import pyarrow.flight as flight

    client_kwargs: dict[str, Any] = {}
    if options.tls_root_certs is not None:
        client_kwargs["tls_root_certs"] = options.tls_root_certs.encode()
    if options.tls_skip_verify:
        client_kwargs["disable_server_verification"] = True
    if options.tls_override_hostname is not None:
        client_kwargs["override_hostname"] = options.tls_override_hostname
    client = flight.FlightClient(options.uri, **client_kwargs)
    try:
        timeout = options.timeout or _DEFAULT_TIMEOUT
        headers = [(k.encode(), v.encode()) for k, v in options.headers]
        if options.token is not None:
            headers.append((b"authorization", f"Bearer {options.token}".encode()))
        elif options.user is not None and options.password is not None:
            handshake = flight.FlightCallOptions(headers=list(headers), timeout=timeout)
            headers.append(client.authenticate_basic_token(options.user, options.password, handshake))
        call = flight.FlightCallOptions(headers=headers, timeout=timeout)
        info_result = client.get_flight_info(flight.FlightDescriptor.for_command(get_sql_info_command(*info)), call)
        values: dict[int, Any] = {}
        for endpoint in info_result.endpoints:
            table = client.do_get(endpoint.ticket, call).read_all()
            for name, value in zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=False):
                values[int(name)] = value
        return values
    finally:
        client.close()


def _status_of(exc: Exception) -> str:
    import pyarrow as pa
    import pyarrow.flight as flight

    for kind, status in (
        (pa.ArrowInvalid, "INVALID_ARGUMENT"),
        (pa.ArrowKeyError, "NOT_FOUND"),
        (pa.ArrowIndexError, "OUT_OF_RANGE"),
        (flight.FlightUnauthenticatedError, "UNAUTHENTICATED"),
        (flight.FlightUnauthorizedError, "PERMISSION_DENIED"),
        (flight.FlightUnavailableError, "UNAVAILABLE"),
        (flight.FlightTimedOutError, "DEADLINE_EXCEEDED"),
        (flight.FlightCancelledError, "CANCELLED"),
        (flight.FlightInternalError, "INTERNAL"),
    ):
        if isinstance(exc, kind):
            return status
    return "UNKNOWN"
