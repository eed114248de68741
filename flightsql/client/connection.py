"""Flight clients for one query: the server asked, and every endpoint location.

A :class:`Connection` logs in once (Flight ``Handshake`` with Basic credentials,
or a given bearer token) and sends the same ``authorization`` header, the user's
extra headers and what is left of the ``--timeout`` with every call, to the
server asked and to the location of every endpoint. Clients are made once per
location and closed together. Every pyarrow error leaves this module as a
:class:`~flightsql.client.errors.ClientError`.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from flightsql.client.errors import ClientError, ExitCode, ServerError, UsageError, first_line, from_flight_error
from flightsql.client.options import QueryOptions
from flightsql.protocol import CommandStatementQuery, encode_command

# An endpoint location with this scheme means "the connection the FlightInfo came from".
REUSE_CONNECTION = "arrow-flight-reuse-connection"
CANCEL_TIMEOUT = 5.0


#: gRPC keepalive of every connection the client opens
KEEPALIVE = (
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)


class TimedOut(ClientError):
    """The ``--timeout`` passed before the query was complete."""

    exit_code = ExitCode.TIMEOUT


class Deadline:
    """What is left of an overall time limit (None: no limit)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._end = None if seconds is None else time.monotonic() + seconds

    def expired(self, slack: float = 0.05) -> bool:
        return self._end is not None and time.monotonic() >= self._end - slack

    def remaining(self) -> float | None:
        if self._end is None:
            return None
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimedOut(f"DEADLINE_EXCEEDED: no complete result within --timeout {self.seconds:g} s")
        return left


def as_client_error(exc: BaseException, deadline: Deadline | None = None) -> ClientError:
    """The ClientError for a pyarrow exception, keeping the server's status and message."""
    if isinstance(exc, ClientError):
        return exc
    error = from_flight_error(exc)
    if error is None:
        return ClientError(first_line(str(exc)) or type(exc).__name__)
    if isinstance(error, ServerError) and error.code == "DEADLINE_EXCEEDED" and deadline and deadline.expired():
        return TimedOut(f"DEADLINE_EXCEEDED: no complete result within --timeout {deadline.seconds:g} s")
    return error


def _cancel_request(info: flight.FlightInfo) -> bytes:
    """A serialized ``CancelFlightInfoRequest``: field 1 holds the FlightInfo."""
    body = info.serialize()
    size, length = bytearray(), len(body)
    while True:
        byte = length & 0x7F
        length >>= 7
        size.append(byte | (0x80 if length else 0))
        if not length:
            break
    return b"\x0a" + bytes(size) + bytes(body)


class Connection:
    """Logged-in Flight clients for one query; a context manager that closes them."""

    def __init__(self, options: QueryOptions, deadline: Deadline) -> None:
        self.options = options
        self.deadline = deadline
        self._headers: list[tuple[bytes, bytes]] = [(k.encode(), v.encode()) for k, v in options.headers]
        self._clients: dict[str, flight.FlightClient] = {}
        self._lock = threading.Lock()
        self.server = self._connect(options.uri)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in {id(c): c for c in [self.server, *clients]}.values():
            with contextlib.suppress(Exception):  # closing is best effort
                client.close()

    # ------------------------------------------------------------------ clients

    def _connect(self, uri: str) -> flight.FlightClient:
        # keepalive pings: a reader whose server's host stops answering fails within
        # seconds, even without --timeout (a quiet, healthy stream answers them)
        kwargs: dict[str, Any] = {"generic_options": list(KEEPALIVE)}
        if uri.startswith("grpc+tls://"):
            if self.options.tls_root_certs is not None:
                kwargs["tls_root_certs"] = self.options.tls_root_certs
            if self.options.tls_skip_verify:
                kwargs["disable_server_verification"] = True
        try:
            return flight.connect(uri, **kwargs)
        except (pa.ArrowException, ValueError) as exc:
            raise UsageError(f"cannot connect to {uri!r}: {first_line(str(exc))}") from None

    def client_for(self, location: str) -> flight.FlightClient:
        """The client for an endpoint location; "" or reuse-connection means the server asked."""
        if not location or location.startswith(REUSE_CONNECTION + ":") or location == self.options.uri:
            return self.server
        with self._lock:
            client = self._clients.get(location)
            if client is None:
                client = self._clients[location] = self._connect(location)
            return client

    def call_options(self, timeout: float | None = None) -> flight.FlightCallOptions:
        remaining = self.deadline.remaining()
        if timeout is not None:
            remaining = timeout if remaining is None else min(timeout, remaining)
        return flight.FlightCallOptions(timeout=remaining, headers=list(self._headers))

    # ------------------------------------------------------------------ calls

    def login(self) -> None:
        """Log in with user and password, or use the bearer token given."""
        options = self.options
        if options.token:
            self._headers.append((b"authorization", f"Bearer {options.token}".encode()))
            return
        if not options.user:
            return
        try:
            key, value = self.server.authenticate_basic_token(
                options.user, options.password or "", self.call_options()
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a ClientError
            error = as_client_error(exc, self.deadline)
            if not isinstance(error, ServerError):
                # A Handshake that could not even start says little ("Could not finish
                # writing before closing"); a plain call says why (refused, no such host).
                self._explain_failed_handshake()
            raise error from None
        if key:
            self._headers.append((key, value))
        else:  # the server issued no token: send the credentials with every call
            basic = base64.b64encode(f"{options.user}:{options.password or ''}".encode()).decode()
            self._headers.append((b"authorization", f"Basic {basic}".encode()))

    def _explain_failed_handshake(self) -> None:
        try:
            self.server.get_flight_info(flight.FlightDescriptor.for_command(b""), self.call_options(CANCEL_TIMEOUT))
        except Exception as exc:  # noqa: BLE001
            error = as_client_error(exc, self.deadline)
            if isinstance(error, ServerError) and error.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                raise error from None

    def flight_info(self, sql: str) -> flight.FlightInfo:
        """Plan the query: ``GetFlightInfo(CommandStatementQuery)``."""
        descriptor = flight.FlightDescriptor.for_command(encode_command(CommandStatementQuery(query=sql)))
        try:
            return self.server.get_flight_info(descriptor, self.call_options())
        except Exception as exc:  # noqa: BLE001
            raise as_client_error(exc, self.deadline) from None

    def do_get(self, endpoint: flight.FlightEndpoint) -> tuple[flight.FlightStreamReader, str]:
        """Open an endpoint's stream at the first of its locations that answers.

        Returns the reader, whose schema has been received, and the location used
        ("" for the server asked).
        """
        locations = [location.uri.decode() for location in endpoint.locations] or [""]
        error: ClientError | None = None
        for location in locations:
            try:
                reader = self.client_for(location).do_get(endpoint.ticket, self.call_options())
                reader.schema  # noqa: B018 - the first message: fails here if the node is gone
                return reader, location
            except Exception as exc:  # noqa: BLE001
                error = as_client_error(exc, self.deadline)
                if not (isinstance(error, ServerError) and error.code == "UNAVAILABLE"):
                    raise error from None
        assert error is not None
        raise error

    def cancel(self, info: flight.FlightInfo) -> None:
        """Ask the server to cancel the query and free its result; best effort."""
        with contextlib.suppress(Exception):  # the query failed already; nothing more to tell
            action = flight.Action("CancelFlightInfo", _cancel_request(info))
            options = flight.FlightCallOptions(timeout=CANCEL_TIMEOUT, headers=list(self._headers))
            for _ in self.server.do_action(action, options):
                pass
