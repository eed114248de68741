"""What the query client sends with a call, and how it reports a gRPC status: the code's
name, the server's message on one line, and the exit code. A real gRPC server on
127.0.0.1 answers every GetFlightInfo with the status the test sets."""

from __future__ import annotations

import shutil
import socket
import subprocess
from concurrent import futures
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from flightsql.client.connection import Connection, Deadline, TimedOut
from flightsql.client.errors import ExitCode, ServerError, first_line
from flightsql.client.options import QueryOptions

MESSAGE = "[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found. SQLSTATE: 42P01\n'Project [*]\n"


class _Statuses:
    """A gRPC server on 127.0.0.1 whose GetFlightInfo answers with the status set in ``code``."""

    def __init__(self, credentials: grpc.ServerCredentials | None = None) -> None:
        self.code = grpc.StatusCode.INVALID_ARGUMENT
        self.metadata: list[tuple[str, str]] = []
        handler = grpc.method_handlers_generic_handler("arrow.flight.protocol.FlightService", {
            "GetFlightInfo": grpc.unary_unary_rpc_method_handler(
                self._answer, request_deserializer=bytes, response_serializer=bytes),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(2))
        self.server.add_generic_rpc_handlers((handler,))
        if credentials is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.server.start()

    def _answer(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.metadata = [(m.key, m.value) for m in context.invocation_metadata()]
        context.abort(self.code, MESSAGE)
        raise AssertionError("abort returns only by raising")


@pytest.fixture(scope="module")
def statuses() -> Iterator[_Statuses]:
    server = _Statuses()
    yield server
    server.server.stop(None)


def _connection(uri: str, **kwargs: object) -> Connection:
    return Connection(QueryOptions(uri=uri, sql="SELECT 1", **kwargs), Deadline(10))  # type: ignore[arg-type]


EXPECTED = {
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.QUERY_FAILED,
    grpc.StatusCode.NOT_FOUND: ExitCode.QUERY_FAILED,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.QUERY_FAILED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitCode.QUERY_FAILED,
    grpc.StatusCode.UNIMPLEMENTED: ExitCode.QUERY_FAILED,
    grpc.StatusCode.INTERNAL: ExitCode.QUERY_FAILED,
    grpc.StatusCode.CANCELLED: ExitCode.QUERY_FAILED,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.QUERY_FAILED,
    grpc.StatusCode.UNKNOWN: ExitCode.QUERY_FAILED,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.AUTHENTICATION,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.AUTHENTICATION,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.TIMEOUT,
}


@pytest.mark.parametrize("code", list(EXPECTED), ids=lambda c: c.name)
def test_status_becomes_code_name_message_and_exit_code(statuses: _Statuses, code: grpc.StatusCode) -> None:
    statuses.code = code
    with _connection(f"grpc://127.0.0.1:{statuses.port}") as connection:
        with pytest.raises(ServerError) as caught:
            connection.flight_info("SELECT * FROM nope")
    error = caught.value
    assert error.code == code.name
    assert error.message == f"{code.name}: {first_line(MESSAGE)}"
    assert "\n" not in error.message
    assert error.exit_code == EXPECTED[code]


def test_token_and_headers_go_with_every_call(statuses: _Statuses) -> None:
    statuses.code = grpc.StatusCode.NOT_FOUND
    uri = f"grpc://127.0.0.1:{statuses.port}"
    with _connection(uri, token="t0k3n", headers=(("x-tenant", "blue"), ("x-trace", "a=b"))) as connection:
        connection.login()
        with pytest.raises(ServerError):
            connection.flight_info("SELECT 1")
    assert ("authorization", "Bearer t0k3n") in statuses.metadata
    assert ("x-tenant", "blue") in statuses.metadata and ("x-trace", "a=b") in statuses.metadata


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_unavailable_even_when_logging_in() -> None:
    uri = f"grpc://127.0.0.1:{_closed_port()}"
    with _connection(uri, user="alice", password="x") as connection:
        with pytest.raises(ServerError) as caught:
            connection.login()
    assert caught.value.code == "UNAVAILABLE" and caught.value.exit_code == ExitCode.UNREACHABLE
    with _connection(uri) as connection:
        with pytest.raises(ServerError, match="^UNAVAILABLE: .*(refused|connect)"):
            connection.flight_info("SELECT 1")


def test_deadline_that_passed_is_a_timeout() -> None:
    deadline = Deadline(0.0001)
    while True:
        try:
            deadline.remaining()
        except TimedOut as exc:
            assert exc.exit_code == ExitCode.TIMEOUT and "--timeout" in exc.message
            break
    assert Deadline(None).remaining() is None


@pytest.fixture(scope="module")
def tls_statuses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Statuses, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    work = tmp_path_factory.mktemp("tls")
    key, cert = work / "key.pem", work / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    server = _Statuses(grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())]))
    server.code = grpc.StatusCode.NOT_FOUND
    yield server, cert
    server.server.stop(None)


def test_tls_trusts_the_given_roots_or_skips_verification(tls_statuses: tuple[_Statuses, Path]) -> None:
    server, cert = tls_statuses
    uri = f"grpc+tls://localhost:{server.port}"
    for options in ({"tls_root_certs": cert.read_bytes()}, {"tls_skip_verify": True}):
        with _connection(uri, **options) as connection:
            with pytest.raises(ServerError) as caught:
                connection.flight_info("SELECT 1")
        assert caught.value.code == "NOT_FOUND"  # the server answered
    with _connection(uri) as connection:
        with pytest.raises(ServerError) as untrusted:
            connection.flight_info("SELECT 1")
    assert untrusted.value.code == "UNAVAILABLE"
