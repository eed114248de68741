"""The node's Livy-compatible REST server (``--rest-port``): interactive SQL sessions and
their statements, at ``/`` and under ``/api/livy/``.

Every request needs a login, the same as Flight's (HTTP Basic with a user's password, or a
bearer token a Flight login returned).  A user sees and acts on their own sessions; an
admin of the authorization policy on everyone's.  Sessions and statements live in
ZooKeeper: any node answers for any of them, and a statement runs on the node it was
posted to."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.flight as flight

from flightsql.auth import Authenticator
from flightsql.errors import FlightSqlError, Unauthenticated
from flightsql.protocol import codec
from flightsql.protocol import commands as cmd
from flightsql.rest import openapi
from flightsql.rest.batches import FINISHED, Batch, BatchError, Batches
from flightsql.rest.livy import (
    SESSION_KINDS,
    SQL_KINDS,
    Session,
    SessionState,
    Statement,
    StatementState,
    error_output,
)
from flightsql.rest.runner import Headers, StatementRunner, call_headers, call_options
from flightsql.rest.store import RestStore
from flightsql.server.sessions import new_session_id
from flightsql.web.listener import HttpListener

if TYPE_CHECKING:
    from flightmanager.tls import TlsFiles

log = logging.getLogger(__name__)

#: the largest request body taken (a statement's code is limited again by the node)
MAX_BODY_BYTES = 2 * 1024 * 1024
#: seconds a client is asked to wait when every query slot is taken
RETRY_AFTER_SECONDS = 5
PREFIX = "/api/livy"
#: the Livy release whose REST API this gateway follows (clients compare it)
LIVY_API_VERSION = "0.8.0-incubating"


class _HasOwner(Protocol):
    owner: str


Owned = TypeVar("Owned", bound=_HasOwner)


class RestError(Exception):
    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class LivyGateway:
    """The REST API over a :class:`RestStore`, running statements through Flight SQL."""

    def __init__(self, store: RestStore, runner: StatementRunner, authenticator: Authenticator,
                 is_admin: Callable[[str], bool], node_id: str, is_live: Callable[[str], bool],
                 busy: Callable[[], bool], version: str = "", batches: Batches | None = None,
                 may_submit: Callable[[str], bool] = lambda user: False) -> None:
        self.version = version
        self.batches = batches
        self.may_submit = may_submit
        self.url: str | None = None  # where the API is served, once it listens
        self.store = store
        self.runner = runner
        self.authenticator = authenticator
        self.is_admin = is_admin
        self.node_id = node_id
        self.is_live = is_live
        self.busy = busy

    # -- who asks ----------------------------------------------------------------------
    def user(self, authorization: str | None, source: str) -> str:
        metadata = {} if authorization is None else {"authorization": authorization}
        return self.authenticator.authenticate(metadata, source=source).principal.user

    def _owned(self, user: str, what: str, ident: int, record: Owned | None) -> Owned:
        """A session or batch the user may act on: their own, or any for an admin."""
        if record is None:
            raise RestError(HTTPStatus.NOT_FOUND, f"{what.capitalize()} '{ident}' not found.")
        if record.owner != user and not self.is_admin(user):
            raise RestError(HTTPStatus.FORBIDDEN, f"User '{user}' is not allowed to access {what} {ident}.")
        return record

    def _mine(self, user: str, records: Iterable[Owned]) -> list[Owned]:
        return [r for r in records if r.owner == user or self.is_admin(user)]

    def _session(self, user: str, session_id: int) -> Session:
        return self._owned(user, "session", session_id, self.store.session(session_id))

    def _headers(self, session: Session) -> Callable[[], Headers]:
        # a fresh token per call: a long session outlives any one token
        return lambda: call_headers(self.authenticator.token_for(session.owner), session.flight_session)

    # -- views -------------------------------------------------------------------------
    def _statement_view(self, statement: Statement) -> Statement:
        """A statement as clients see it: one whose node left while it ran has failed."""
        if not statement.state.finished and statement.node != self.node_id and not self.is_live(statement.node):
            statement.state = StatementState.ERROR
            statement.output = error_output(statement.id, "NodeLost",
                                            f"node {statement.node} left the cluster while the statement ran")
        return statement

    def _state(self, session: Session) -> SessionState:
        statements = [self._statement_view(s) for s in self.store.statements(session.id)]
        return SessionState.BUSY if any(not s.state.finished for s in statements) else SessionState.IDLE

    # -- sessions ----------------------------------------------------------------------
    def list_sessions(self, user: str, query: dict[str, str]) -> dict[str, Any]:
        start, size = _window(query)
        mine = self._mine(user, self.store.sessions())
        return {"from": start, "total": len(mine),
                "sessions": [s.livy(self._state(s)) for s in mine[start:start + size]]}

    def create_session(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("kind", "sql")
        if kind not in SESSION_KINDS:
            raise RestError(HTTPStatus.BAD_REQUEST, f"session kind {kind!r} is not supported here: only SQL "
                            f"sessions ({', '.join(SESSION_KINDS)}) run on this gateway")
        proxy = body.get("proxyUser")
        if proxy not in (None, user):
            raise RestError(HTTPStatus.FORBIDDEN, f"User '{user}' may not impersonate '{proxy}'.")
        conf = body.get("conf") or {}
        name = body.get("name")
        if not isinstance(conf, dict) or not all(isinstance(v, (str, int, float, bool)) for v in conf.values()):
            raise RestError(HTTPStatus.BAD_REQUEST, "conf must be an object of settings")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise RestError(HTTPStatus.BAD_REQUEST, "name must be a string of at most 200 characters")
        session = self.store.create_session(lambda sid: Session(
            sid, user, str(kind), new_session_id(), time.time(), name, {str(k): str(v) for k, v in conf.items()}))
        self.store.log(session.id, f"session created by {user} on node {self.node_id}")
        for key, value in session.conf.items():  # Spark settings of the session, set as SET would
            self._set(session, key, value)
        return session.livy(SessionState.IDLE)

    def _set(self, session: Session, key: str, value: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", key):
            raise RestError(HTTPStatus.BAD_REQUEST, f"invalid setting name {key!r}")
        if any(ch in value for ch in ";\r\n\0"):
            raise RestError(HTTPStatus.BAD_REQUEST, f"the value of {key} may not hold ';' or line breaks")
        # SET takes the rest of the statement as the value, as written
        descriptor = flight.FlightDescriptor.for_command(
            codec.encode_command(cmd.CommandStatementQuery(query=f"SET {key} = {value}")))
        try:
            self.runner.caller.client().get_flight_info(descriptor, call_options(self._headers(session)()))
        except (flight.FlightError, pa.ArrowException) as error:
            self.store.delete_session(session.id)
            raise RestError(HTTPStatus.BAD_REQUEST, f"setting {key}: {str(error).split('. Detail:')[0]}") from None

    def get_session(self, user: str, session_id: int) -> dict[str, Any]:
        session = self._session(user, session_id)
        return session.livy(self._state(session))

    def session_state(self, user: str, session_id: int) -> dict[str, Any]:
        session = self._session(user, session_id)
        return {"id": session.id, "state": self._state(session).value}

    def session_log(self, user: str, session_id: int, query: dict[str, str]) -> dict[str, Any]:
        session = self._session(user, session_id)
        start, size = _window(query, default_size=100)
        return {"id": session.id, "from": start, "total": len(session.log), "log": session.log[start:start + size]}

    def delete_session(self, user: str, session_id: int) -> dict[str, Any]:
        session = self._session(user, session_id)
        for statement in self.store.statements(session.id):
            if not statement.state.finished:
                self.cancel_statement(user, session.id, statement.id)
        self._close_flight_session(session)
        self.store.delete_session(session.id)
        return {"msg": "deleted"}

    def _close_flight_session(self, session: Session) -> None:
        try:
            body = codec.encode_action_body(cmd.CloseSession())
            options = call_options(self._headers(session)())
            list(self.runner.caller.client().do_action(flight.Action("CloseSession", body), options))
        except (flight.FlightError, pa.ArrowException) as error:
            log.info("closing the Flight session of REST session %s: %s", session.id, error)

    # -- statements --------------------------------------------------------------------
    def list_statements(self, user: str, session_id: int, query: dict[str, str]) -> dict[str, Any]:
        session = self._session(user, session_id)
        statements = [self._statement_view(s).livy() for s in self.store.statements(session.id)]
        start, size = _window(query, default_size=len(statements) or 1)
        return {"total_statements": len(statements), "statements": statements[start:start + size]}

    def run_statement(self, user: str, session_id: int, body: dict[str, Any]) -> dict[str, Any]:
        session = self._session(user, session_id)
        code, kind = body.get("code"), body.get("kind", "sql" if session.kind == "sql" else None)
        if not isinstance(code, str) or not code.strip():
            raise RestError(HTTPStatus.BAD_REQUEST, "code must be a non-empty string")
        if kind not in SQL_KINDS:
            raise RestError(HTTPStatus.BAD_REQUEST, f"statement kind {kind!r} is not supported here: statements "
                            "are Spark SQL (kind 'sql'); Spark code never runs on the gateway's driver")
        if self.busy():
            raise RestError(HTTPStatus.SERVICE_UNAVAILABLE, "every query slot of this node is taken; retry later",
                            {"Retry-After": str(RETRY_AFTER_SECONDS)})
        statement = self.store.add_statement(session.id, lambda sid: Statement(
            sid, code, StatementState.WAITING, self.node_id))
        self.store.log(session.id, f"statement {statement.id} waiting on node {self.node_id}")
        self.runner.start(session.id, statement, self._headers(session))
        return statement.livy()

    def get_statement(self, user: str, session_id: int, statement_id: int) -> dict[str, Any]:
        session = self._session(user, session_id)
        statement = self.store.statement(session.id, statement_id)
        if statement is None:
            raise RestError(HTTPStatus.NOT_FOUND, f"Statement '{statement_id}' not found in session {session_id}.")
        return self._statement_view(statement).livy()

    def cancel_statement(self, user: str, session_id: int, statement_id: int) -> dict[str, Any]:
        session = self._session(user, session_id)

        def cancel(s: Statement) -> None:
            if s.state is StatementState.WAITING:
                s.state, s.completed = StatementState.CANCELLED, int(time.time() * 1000)
            elif s.state is StatementState.RUNNING:
                s.state = StatementState.CANCELLING  # its runner ends it, and cancels the query

        if self.store.update_statement(session.id, statement_id, cancel) is None:
            raise RestError(HTTPStatus.NOT_FOUND, f"Statement '{statement_id}' not found in session {session_id}.")
        return {"msg": "canceled"}

    # -- batches -----------------------------------------------------------------------
    def _batch(self, user: str, batch_id: int) -> Batch:
        return self._owned(user, "batch", batch_id, self.batches.store.get(batch_id) if self.batches else None)

    def list_batches(self, user: str, query: dict[str, str]) -> dict[str, Any]:
        start, size = _window(query)
        mine = self._mine(user, self.batches.store.all() if self.batches is not None else [])
        return {"from": start, "total": len(mine), "sessions": [b.livy() for b in mine[start:start + size]]}

    def create_batch(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.batches is None or self.batches.limit <= 0:
            raise RestError(HTTPStatus.FORBIDDEN, "batches are off on this node: its operator allows them with "
                            "--rest-batches")
        if not self.may_submit(user):
            raise RestError(HTTPStatus.FORBIDDEN, f"User '{user}' may not submit batches: a batch runs code as the "
                            "node's own user, which the authorization policy leaves to its admins")
        if body.get("proxyUser") not in (None, user):
            raise RestError(HTTPStatus.FORBIDDEN, f"User '{user}' may not impersonate '{body.get('proxyUser')}'.")
        if self.batches.full():
            raise RestError(HTTPStatus.SERVICE_UNAVAILABLE, f"{self.batches.limit} batches are running on this "
                            "node; retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        try:
            return self.batches.launch(user, body).livy()
        except BatchError as error:
            raise RestError(HTTPStatus.BAD_REQUEST, str(error)) from None

    def get_batch(self, user: str, batch_id: int) -> dict[str, Any]:
        return self._batch(user, batch_id).livy()

    def batch_state(self, user: str, batch_id: int) -> dict[str, Any]:
        batch = self._batch(user, batch_id)
        return {"id": batch.id, "state": batch.state}

    def batch_log(self, user: str, batch_id: int, query: dict[str, str]) -> dict[str, Any]:
        batch = self._batch(user, batch_id)
        start, size = _window(query, default_size=100)
        lines = [*batch.log, *([f"batch ended: {batch.reason}"] if batch.reason else [])]
        return {"id": batch.id, "from": start, "total": len(lines), "log": lines[start:start + size]}

    def delete_batch(self, user: str, batch_id: int) -> dict[str, Any]:
        batch = self._batch(user, batch_id)
        assert self.batches is not None
        if batch.state not in FINISHED:
            self.batches.store.update(batch.id, lambda b: setattr(b, "kill", True))  # its node ends it
        return {"msg": "deleted"}

    # -- routing -----------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any], user: str) -> Any:
        if path.startswith(PREFIX + "/") or path == PREFIX:
            path = path[len(PREFIX):] or "/"
        parts = [p for p in path.split("/") if p]
        if parts == ["version"] and method == "GET":
            return {"version": LIVY_API_VERSION, "server": f"flightsql {self.version}"}
        if parts[:1] not in (["sessions"], ["batches"]):
            raise RestError(HTTPStatus.NOT_FOUND, f"no such resource: {path}")
        ids = [_number(p, "statement" if i == 3 else parts[0][:-1]) for i, p in enumerate(parts) if i in (1, 3)]
        shape = tuple("{}" if i in (1, 3) else p for i, p in enumerate(parts))
        handlers: dict[tuple[str, tuple[str, ...]], Callable[[], Any]] = {
            ("GET", ("sessions",)): lambda: self.list_sessions(user, query),
            ("POST", ("sessions",)): lambda: self.create_session(user, body),
            ("GET", ("sessions", "{}")): lambda: self.get_session(user, *ids),
            ("DELETE", ("sessions", "{}")): lambda: self.delete_session(user, *ids),
            ("GET", ("sessions", "{}", "state")): lambda: self.session_state(user, *ids),
            ("GET", ("sessions", "{}", "log")): lambda: self.session_log(user, ids[0], query),
            ("GET", ("sessions", "{}", "statements")): lambda: self.list_statements(user, ids[0], query),
            ("POST", ("sessions", "{}", "statements")): lambda: self.run_statement(user, ids[0], body),
            ("GET", ("sessions", "{}", "statements", "{}")): lambda: self.get_statement(user, *ids),
            ("POST", ("sessions", "{}", "statements", "{}", "cancel")): lambda: self.cancel_statement(user, *ids),
            ("GET", ("batches",)): lambda: self.list_batches(user, query),
            ("POST", ("batches",)): lambda: self.create_batch(user, body),
            ("GET", ("batches", "{}")): lambda: self.get_batch(user, *ids),
            ("DELETE", ("batches", "{}")): lambda: self.delete_batch(user, *ids),
            ("GET", ("batches", "{}", "state")): lambda: self.batch_state(user, *ids),
            ("GET", ("batches", "{}", "log")): lambda: self.batch_log(user, ids[0], query),
        }
        handler = handlers.get((method, shape))
        if handler is None:
            if any(shape == s for _, s in handlers):
                raise RestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}")
            raise RestError(HTTPStatus.NOT_FOUND, f"no such resource: {path}")
        return handler()


def _number(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise RestError(HTTPStatus.NOT_FOUND, f"no {what} {text!r}")
    return int(text)


def _window(query: dict[str, str], default_size: int = 20) -> tuple[int, int]:
    try:
        start = int(query.get("from", 0))
        size = int(query.get("size", default_size))
    except ValueError:
        raise RestError(HTTPStatus.BAD_REQUEST, "from and size must be numbers") from None
    if start < 0 or size < 0:
        raise RestError(HTTPStatus.BAD_REQUEST, "from and size must be >= 0")
    return start, size


class RestServer:
    """Serves a :class:`LivyGateway` over HTTP (or HTTPS with the node's certificate)."""

    def __init__(self, host: str, port: int, gateway: LivyGateway, tls: TlsFiles | None = None) -> None:
        self.gateway = gateway
        self._listener = HttpListener(host, port, _handler(gateway), tls, "rest-http")
        self.port: int = self._listener.port

    def start(self, public_host: str | None = None) -> RestServer:
        self.gateway.url = self._listener.url(public_host)
        self._listener.start()
        return self

    def url(self, host: str | None = None) -> str:
        return self._listener.url(host)

    def stop(self) -> None:
        self._listener.stop()
        self.gateway.runner.caller.close()
        if self.gateway.batches is not None:
            self.gateway.batches.stop()


def _handler(gateway: LivyGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "flightsql-livy"
        protocol_version = "HTTP/1.1"

        def _serve(self, method: str) -> None:
            headers: dict[str, str] = {}
            try:
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                body = self._body()  # read whatever was sent, so the connection stays in step
                if method != "POST":
                    body = {}
                if method == "GET" and url.path in ("/openapi.json", PREFIX + "/openapi.json"):
                    status, doc = HTTPStatus.OK, openapi.document(gateway.version, gateway.url)  # no secret: no login
                else:
                    try:
                        user = gateway.user(self.headers.get("Authorization"), self.client_address[0])
                    except Unauthenticated as error:
                        raise RestError(HTTPStatus.UNAUTHORIZED, str(error),
                                        {"WWW-Authenticate": 'Basic realm="flightsql", charset="UTF-8"'}) from None
                    doc = gateway.route(method, url.path, query, body, user)
                    status = HTTPStatus.CREATED if method == "POST" and url.path.rstrip("/").endswith(
                        ("sessions", "statements", "batches")) else HTTPStatus.OK
            except RestError as error:
                status, doc, headers = error.status, {"msg": str(error)}, error.headers
            except FlightSqlError as error:
                status, doc = _http_status(error), {"msg": str(error)}
            except Exception:
                reference = f"{int(time.time() * 1000):x}"
                log.exception("REST request %s %s failed (reference %s)", method, self.path[:200], reference)
                status, doc = HTTPStatus.INTERNAL_SERVER_ERROR, {"msg": f"internal error (reference {reference})"}
            payload = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> dict[str, Any]:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise RestError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from None
            if length > MAX_BODY_BYTES or length < 0:
                self.close_connection = True
                raise RestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request bodies are limited to {MAX_BODY_BYTES} bytes"
                )
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise RestError(HTTPStatus.BAD_REQUEST, "the request body is not JSON") from None
            if not isinstance(body, dict):
                raise RestError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
            return body

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("REST %s " + format, self.client_address[0], *args)

    return Handler


def _http_status(error: FlightSqlError) -> HTTPStatus:
    import grpc

    code: Any = getattr(error, "code", None)
    return {
        grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
        grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
        grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
        grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.SERVICE_UNAVAILABLE,
        grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    }.get(code, HTTPStatus.INTERNAL_SERVER_ERROR)
