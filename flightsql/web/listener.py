"""One HTTP listener for the node's HTTP APIs (the status page, the REST API): a threading
server on a host and port, HTTPS with the node's certificate where it has one."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flightmanager.tls import TlsFiles


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _Server6(_Server):
    address_family = socket.AF_INET6


class HttpListener:
    """Serves ``handler`` on ``host:port`` (0: any port) from :meth:`start` until :meth:`stop`."""

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], tls: TlsFiles | None,
                 name: str) -> None:
        self.host = host
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), handler)
        self.port: int = self._server.server_address[1]
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(tls.cert, tls.key)
            # the handshake happens in the request's own thread: a client that never
            # completes it holds no other client up
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.5,), name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def url(self, host: str | None = None) -> str:
        """The listener's URL, with ``host`` (the advertised name) or the bound address."""
        name = host or self.host
        if name in ("0.0.0.0", "::", ""):
            name = socket.gethostname()
        return f"{self.scheme}://{'[' + name + ']' if ':' in name else name}:{self.port}/"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
