"""The node's HTTP status server (standard library ``ThreadingHTTPServer``).

``/``            the status page (HTML): live nodes, running and recent queries
``/api/status``  the same as JSON
``/metrics``     Prometheus exposition of the process's default registry

Anything else is 404.  It listens on the host of the public Flight server.  Every path
asks for a login, the same as Flight's (HTTP Basic with a user's password, or a bearer
token a Flight login returned); a user sees their own queries, an admin of the
authorization policy everyone's.  ``--status-open`` serves everything without a login,
for trusted networks; so does a node without users (bound to loopback).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from flightmanager.status import ClusterStatus
from flightsql.auth import Authenticator
from flightsql.errors import FlightSqlError, Unauthenticated
from flightsql.web import page
from flightsql.web.listener import HttpListener

if TYPE_CHECKING:
    from flightmanager.tls import TlsFiles

log = logging.getLogger(__name__)

StatusSource = Callable[[], ClusterStatus]
Response = tuple[int, str, bytes, dict[str, str]]
#: the viewer of a response: a user name, or None for "everyone's queries"
Viewer = str | None
REALM = 'Basic realm="flightsql", charset="UTF-8"'


class StatusServer:
    """Serves ``status()`` (called per request) until :meth:`stop`."""

    def __init__(
        self, host: str, port: int, status: StatusSource, version: str,
        authenticator: Authenticator | None = None, is_admin: Callable[[str], bool] = lambda user: False,
        open_to_all: bool = False, tls: TlsFiles | None = None,
    ) -> None:
        self.host = host
        self._status = status
        self._version = version
        self._authenticator = authenticator if authenticator is not None and authenticator.enabled else None
        self._is_admin = is_admin
        self._open = open_to_all or self._authenticator is None
        self._listener = HttpListener(host, port, _handler(self), tls, "status-http")
        self.port: int = self._listener.port
        self.scheme = self._listener.scheme

    def start(self) -> StatusServer:
        self._listener.start()
        return self

    def url(self, host: str | None = None) -> str:
        """The page's URL, with ``host`` (the advertised name) or the bound address."""
        return self._listener.url(host)

    def stop(self) -> None:
        self._listener.stop()

    # -- who asks --------------------------------------------------------------------
    def viewer(self, authorization: str | None, source: str = "") -> Viewer:
        """Who a request is from (None: may see everything); raises Unauthenticated."""
        if self._open:
            return None
        assert self._authenticator is not None
        metadata = {} if authorization is None else {"authorization": authorization}
        user = self._authenticator.authenticate(metadata, source=source).principal.user
        return None if self._is_admin(user) else user

    def _status_for(self, viewer: Viewer) -> ClusterStatus:
        status = self._status()
        if viewer is None:
            return status
        return replace(status, queries=tuple(q for q in status.queries if q.owner == viewer))

    # -- responses -------------------------------------------------------------------
    def page(self, viewer: Viewer = None) -> Response:
        nonce = secrets.token_urlsafe(16)
        body = page.render(self._status_for(viewer), self._version, nonce).encode()
        policy = (
            f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        return HTTPStatus.OK, "text/html; charset=utf-8", body, {"Content-Security-Policy": policy}

    def api_status(self, viewer: Viewer = None) -> Response:
        doc = self._status_for(viewer).to_dict()
        doc["version"] = self._version
        return HTTPStatus.OK, "application/json", json.dumps(doc).encode(), {}

    def metrics(self, viewer: Viewer = None) -> Response:
        # figures per node only: no label carries a user's name or SQL
        return HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(REGISTRY), {}


def _handler(server: StatusServer) -> type[BaseHTTPRequestHandler]:
    routes = {"/": server.page, "/api/status": server.api_status, "/metrics": server.metrics}

    class Handler(BaseHTTPRequestHandler):
        server_version = "flightsql-status"
        sys_version = ""

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def _answer(self, with_body: bool) -> None:
            route = routes.get(urlsplit(self.path).path)
            if route is None:
                self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n", {}, with_body)
                return
            try:
                viewer = server.viewer(self.headers.get("Authorization"), self.client_address[0])
            except Unauthenticated as exc:
                body = f"{exc.message}\n".encode()
                self._send(HTTPStatus.UNAUTHORIZED, "text/plain; charset=utf-8", body,
                           {"WWW-Authenticate": REALM}, with_body)
                return
            except FlightSqlError as exc:  # the users file is unusable: nobody logs in
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", f"{exc.message}\n".encode(),
                           {}, with_body)
                return
            try:
                response = route(viewer)
            except Exception as exc:  # noqa: BLE001 - a status page must not take anything down
                log.warning("status page %s failed: %s: %s", self.path, type(exc).__name__, exc)
                body = f"status unavailable: {type(exc).__name__}\n".encode()
                response = HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", body, {}
            self._send(*response, with_body)

        def _send(self, code: int, content_type: str, body: bytes, headers: dict[str, str], with_body: bool) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler
