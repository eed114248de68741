"""TLS for the node's servers and for the channels between nodes and executors.

One set of PEM files describes a node's TLS: its certificate chain and key, and the
certificate authority of the cluster.  With a CA, the internal server demands a client
certificate issued by it: only nodes and their executors (which present the same files,
found at the same paths on every worker host, as Spark's own ``spark.ssl.*`` files are)
push results or watch peers.  The files are read when used, so a process that only
carries a :class:`TlsFiles` (a Spark task does) holds paths, never keys.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

#: the scheme of a location served over TLS
TLS_SCHEME = "grpc+tls"
PLAIN_SCHEME = "grpc"


class TlsConfigError(ValueError):
    """TLS files that are missing, unreadable or do not belong together."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: a certificate (chain), its private key, and the CA that issues the
    cluster's certificates (None: no client certificates are asked for)."""

    cert: Path
    key: Path
    ca: Path | None = None

    def check(self) -> None:
        """Refuse files that cannot be used, naming the file: at start, not at the first
        handshake (where gRPC would only log a failure nobody sees)."""
        for path in (self.cert, self.key, *((self.ca,) if self.ca else ())):
            if not path.is_file():
                raise TlsConfigError(f"TLS file not found: {str(path)!r}")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise TlsConfigError(
                f"{str(self.cert)!r} and {str(self.key)!r} are not a PEM certificate and its key: {exc}"
            ) from None
        if self.ca is not None:
            try:
                context.load_verify_locations(cafile=str(self.ca))
            except (ssl.SSLError, OSError) as exc:
                raise TlsConfigError(f"{str(self.ca)!r} is not a PEM CA certificate: {exc}") from None

    def _read(self) -> tuple[bytes, bytes, bytes | None]:
        return self.cert.read_bytes(), self.key.read_bytes(), self.ca.read_bytes() if self.ca else None

    def server_credentials(self, *, client_certificates: bool) -> grpc.ServerCredentials:
        """Credentials of a server; ``client_certificates``: every client must present a
        certificate issued by the CA (mutual TLS)."""
        cert, key, ca = self._read()
        if client_certificates and ca is None:
            raise TlsConfigError("client certificates need a CA to check them against")
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca if client_certificates else None,
            require_client_auth=client_certificates,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials of a channel to a server of the cluster: trust the CA, present the
        certificate."""
        cert, key, ca = self._read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def location(host: str, port: int, tls: bool) -> str:
    """A Flight location: ``grpc+tls://`` where the server speaks TLS."""
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{TLS_SCHEME if tls else PLAIN_SCHEME}://{bracketed}:{port}"


def channel(uri: str, tls: TlsFiles | None, options: Sequence[tuple[str, object]]) -> grpc.Channel:
    """A channel to a location: secure for ``grpc+tls://`` (which needs ``tls``), else plain."""
    scheme, _, target = uri.partition("://")
    if scheme == TLS_SCHEME:
        if tls is None:
            raise TlsConfigError(f"{uri} speaks TLS, and this process has no TLS files to reach it with")
        return grpc.secure_channel(target, tls.channel_credentials(), options=options)
    return grpc.insecure_channel(target, options=options)
