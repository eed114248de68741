"""Runs a Livy statement as a Flight SQL client of the node itself, in the owner's name and
in the Livy session's Flight SQL session: every check a Flight client meets (login,
authorization, admission, limits) applies to REST clients alike, and the result is a
Flight result that any Flight client can also read, endpoint by endpoint."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.flight as flight

from flightmanager.flight import Flight_pb2 as pb
from flightsql.protocol import codec
from flightsql.protocol import commands as cmd
from flightsql.rest.livy import Statement, StatementState, error_output, json_value, ok_output
from flightsql.rest.store import RestStore
from flightsql.server.sessions import SESSION_COOKIE

log = logging.getLogger(__name__)

#: the largest output a statement record keeps (a znode holds at most 512 KiB)
MAX_OUTPUT_BYTES = 256 * 1024


class FlightCaller:
    """Flight clients of the cluster's nodes, one per location, for the gateway's calls."""

    def __init__(self, own_location: str, tls_root_certs: bytes | None) -> None:
        self.own_location = own_location
        self._roots = tls_root_certs
        self._clients: dict[str, flight.FlightClient] = {}
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._poll: Any = None

    def client(self, location: str | None = None) -> flight.FlightClient:
        uri = location or self.own_location
        with self._lock:
            if uri not in self._clients:
                kwargs = {"tls_root_certs": self._roots} if uri.startswith("grpc+tls") and self._roots else {}
                self._clients[uri] = flight.FlightClient(uri, **kwargs)
            return self._clients[uri]

    def poll(self, descriptor: pb.FlightDescriptor, headers: Headers) -> pb.PollInfo:
        """PollFlightInfo at this node (pyarrow's client has no such call): the query runs
        on, and each answer says how far it got."""
        with self._lock:
            if self._channel is None:
                scheme, _, target = self.own_location.partition("://")
                if scheme == "grpc+tls":
                    credentials = grpc.ssl_channel_credentials(root_certificates=self._roots)
                    self._channel = grpc.secure_channel(target, credentials)
                else:
                    self._channel = grpc.insecure_channel(target)
                self._poll = self._channel.unary_unary(
                    "/arrow.flight.protocol.FlightService/PollFlightInfo",
                    request_serializer=pb.FlightDescriptor.SerializeToString,
                    response_deserializer=pb.PollInfo.FromString)
            call = self._poll
        info: pb.PollInfo = call(descriptor, metadata=headers, timeout=300)
        return info

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
            if self._channel is not None:
                self._channel.close()
                self._channel = None


Headers = list[tuple[str, str]]


def call_headers(token: str | None, flight_session: str) -> Headers:
    """The headers of a call in a user's name (a bearer token) and Flight SQL session (its cookie)."""
    headers = [("cookie", f"{SESSION_COOKIE}={flight_session}")]
    if token is not None:
        headers.append(("authorization", f"Bearer {token}"))
    return headers


def call_options(headers: Headers) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(headers=[(k.encode(), v.encode()) for k, v in headers])


class StatementRunner:
    """Runs statements on threads of their own and records every step in the store."""

    def __init__(self, store: RestStore, caller: FlightCaller, max_rows: int) -> None:
        self.store = store
        self.caller = caller
        self.max_rows = max_rows

    def start(self, session_id: int, statement: Statement, headers: Callable[[], Headers]) -> None:
        threading.Thread(target=self._run, args=(session_id, statement, headers),
                         name=f"rest-statement-{session_id}-{statement.id}", daemon=True).start()

    def _run(self, session_id: int, statement: Statement, headers: Callable[[], Headers]) -> None:
        def begin(s: Statement) -> None:
            if s.state is StatementState.WAITING:
                s.state, s.started = StatementState.RUNNING, _now_ms()

        current = self.store.update_statement(session_id, statement.id, begin)
        if current is None or current.state is not StatementState.RUNNING:
            self._finish(session_id, statement.id, None)  # cancelled before it began
            return
        self.store.log(session_id, f"statement {statement.id} running")
        try:
            info = self._complete(session_id, statement, headers)
            output = None if info is None else self._output(statement.id, info, headers)
        except grpc.RpcError as error:
            output = error_output(statement.id, _status_name(error.code()), (error.details() or "")[:2000])
        except flight.FlightError as error:
            output = error_output(statement.id, _error_name(error), _message(error))
        except pa.ArrowException as error:  # pyarrow's form of INVALID_ARGUMENT, NOT_FOUND, ...
            output = error_output(statement.id, "SparkError", _message(error))
        except Exception as error:
            log.exception("REST statement %s of session %s failed", statement.id, session_id)
            output = error_output(statement.id, type(error).__name__, str(error)[:2000])
        self._finish(session_id, statement.id, output)

    def _complete(self, session_id: int, statement: Statement, headers: Callable[[], Headers]) -> pb.FlightInfo | None:
        """Submit the statement and poll it until its result is complete, recording its
        progress; None if it was cancelled meanwhile (its query is cancelled too)."""
        descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=codec.encode_command(
            cmd.CommandStatementQuery(query=statement.code)))
        interval = 0.05
        cancel_asked, ended = self.store.cancel_watch(session_id, statement.id)
        try:
            while True:
                poll = self.caller.poll(descriptor, headers())
                if not poll.HasField("flight_descriptor"):
                    return poll.info
                if cancel_asked.is_set():
                    self._cancel(poll.info, headers)
                    return None
                if poll.HasField("progress"):
                    fraction = round(min(max(poll.progress, 0.0), 0.99), 3)

                    def advance(s: Statement, fraction: float = fraction) -> None:
                        s.progress = max(s.progress, fraction)

                    self.store.update_statement(session_id, statement.id, advance)
                descriptor = poll.flight_descriptor
                cancel_asked.wait(interval)  # a cancel asked on any node ends the wait at once
                interval = min(interval * 2, 1.0)
        finally:
            ended()

    def _output(self, statement_id: int, info: pb.FlightInfo, headers: Callable[[], Headers]) -> dict[str, Any]:
        rows: list[list[Any]] = []
        schema = pa.ipc.read_schema(pa.py_buffer(info.schema)) if info.schema else pa.schema([])
        for endpoint in info.endpoint:
            if len(rows) >= self.max_rows:
                break
            location = endpoint.location[0].uri if endpoint.location else None
            reader = self.caller.client(location).do_get(flight.Ticket(endpoint.ticket.ticket),
                                                         call_options(headers()))
            for chunk in reader:
                batch = chunk.data
                wanted = min(batch.num_rows, self.max_rows - len(rows))
                for row in batch.slice(0, wanted).to_pylist():
                    rows.append([json_value(v) for v in row.values()])
                if len(rows) >= self.max_rows:
                    reader.cancel()
                    break
        total = info.total_records if info.total_records >= 0 else None
        links = {
            "total_records": total,
            "endpoints": [{"ticket": base64.b64encode(e.ticket.ticket).decode(),
                           "locations": [loc.uri for loc in e.location]} for e in info.endpoint],
        }
        output = ok_output(statement_id, schema, rows, total if len(rows) < self.max_rows else None, links)
        while len(json.dumps(output)) > MAX_OUTPUT_BYTES and rows:  # a record stays small: fewer rows
            del rows[len(rows) // 2:]
            output["truncated"] = True
        return output

    def _cancel(self, info: pb.FlightInfo, headers: Callable[[], Headers]) -> None:
        body = codec.encode_action_body(cmd.CancelFlightInfo(info=info.SerializeToString()))
        try:
            list(self.caller.client().do_action(flight.Action("CancelFlightInfo", body), call_options(headers())))
        except (flight.FlightError, pa.ArrowException) as error:
            log.info("cancelling a REST statement's query: %s", _message(error))

    def _finish(self, session_id: int, statement_id: int, output: dict[str, Any] | None) -> None:
        def end(s: Statement) -> None:
            if s.state in (StatementState.CANCELLING, StatementState.CANCELLED) or output is None:
                s.state = StatementState.CANCELLED
            else:
                s.state = StatementState.AVAILABLE if output["status"] == "ok" else StatementState.ERROR
                s.output = output
            s.progress, s.completed = 1.0, _now_ms()

        done = self.store.update_statement(session_id, statement_id, end)
        if done is not None:
            self.store.log(session_id, f"statement {statement_id} {done.state.value}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _message(error: Exception) -> str:
    text = str(error)
    for marker in (". Detail:", ". gRPC client debug context"):
        text = text.split(marker, 1)[0]
    return text[:2000]


def _status_name(code: grpc.StatusCode) -> str:
    return {
        grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated", grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
        grpc.StatusCode.UNAVAILABLE: "Unavailable", grpc.StatusCode.RESOURCE_EXHAUSTED: "Busy",
        grpc.StatusCode.CANCELLED: "Cancelled", grpc.StatusCode.DEADLINE_EXCEEDED: "TimedOut",
    }.get(code, "SparkError")


#: pyarrow's Flight errors, as the gRPC statuses they stand for
_FLIGHT_STATUSES = {
    flight.FlightUnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    flight.FlightUnauthorizedError: grpc.StatusCode.PERMISSION_DENIED,
    flight.FlightUnavailableError: grpc.StatusCode.UNAVAILABLE,
    flight.FlightTimedOutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    flight.FlightCancelledError: grpc.StatusCode.CANCELLED,
}


def _error_name(error: flight.FlightError) -> str:
    return _status_name(_FLIGHT_STATUSES.get(type(error), grpc.StatusCode.UNKNOWN))
