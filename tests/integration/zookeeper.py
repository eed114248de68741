"""A real ZooKeeper for integration tests: a container where a Docker engine answers,
otherwise the ZooKeeper server in PySpark's jars.

``FLIGHTSQL_TEST_ZOOKEEPER`` chooses:

- ``auto`` (the default): a container if a Docker engine answers and ``testcontainers``
  is installed, else the embedded server;
- ``container``: a container, or the tests that need it skip, saying why;
- ``embedded``: the server from PySpark's jars.

Import the fixture into a test module (``from tests.integration.zookeeper import
zookeeper``) and read ``zookeeper.connect_string``; ``zookeeper.kind`` says which one runs.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from flightmanager.zk.embedded import EmbeddedZooKeeper
from tests.integration import leaks

CHOICE_ENV = "FLIGHTSQL_TEST_ZOOKEEPER"
CHOICES = ("auto", "container", "embedded")
IMAGE = "zookeeper:3.9.3"  # the official image; the server in PySpark's jars is 3.9 too
CLIENT_PORT = 2181
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class ZooKeeperServer:
    connect_string: str
    kind: str  # "container" or "embedded"
    #: the cluster credential the tests' nodes share (--zookeeper-credential)
    credential_file: Path | None = None

    def node_args(self, chroot: str) -> tuple[str, ...]:
        """What a node of a cluster on this ZooKeeper is started with."""
        assert self.credential_file is not None
        return ("--zookeeper", f"{self.connect_string}{chroot}", "--zookeeper-credential", str(self.credential_file))

    def client(self, chroot: str = ""):  # type: ignore[no-untyped-def]
        """A started kazoo client holding the cluster credential."""
        from flightmanager.zk import credential
        from flightmanager.zk.manager import connect

        assert self.credential_file is not None
        return connect(self.connect_string + chroot, credential.load(self.credential_file))


def choice() -> str:
    value = os.environ.get(CHOICE_ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise pytest.UsageError(f"{CHOICE_ENV} must be one of {', '.join(CHOICES)}, got {value!r}")
    return value


def container_unavailable() -> str | None:
    """Why no ZooKeeper container can run here, or None if one can."""
    try:
        import docker
        import testcontainers.core.container  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install 'testcontainers>=4.8,<5')"
    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine to use
        return f"no Docker engine answers ({type(exc).__name__}: {str(exc)[:160]})"
    return None


def _answers_ruok(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"ruok")
            return sock.recv(4) == b"imok"
    except OSError:
        return False


@contextmanager
def _container() -> Iterator[ZooKeeperServer]:
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(IMAGE)
        .with_env("ZOO_4LW_COMMANDS_WHITELIST", "ruok,srvr")
        .with_env("ZOO_MAX_SESSION_TIMEOUT", "60000")
        .with_exposed_ports(CLIENT_PORT)
    )
    with container:
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(CLIENT_PORT))
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers_ruok(host, port):  # a server in a container: only its port tells
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ZooKeeper container did not answer within {START_TIMEOUT:.0f}s")
            time.sleep(0.25)
        yield ZooKeeperServer(f"{host}:{port}", "container")


@contextmanager
def _embedded(directory: Path) -> Iterator[ZooKeeperServer]:
    server = EmbeddedZooKeeper(directory).start()
    try:
        yield ZooKeeperServer(server.connect_string, "embedded")
    finally:
        server.stop()


@contextmanager
def running_zookeeper(directory: Path) -> Iterator[ZooKeeperServer]:
    """A ZooKeeper for the duration of the block, as ``FLIGHTSQL_TEST_ZOOKEEPER`` chooses,
    with a cluster credential for the nodes started on it."""
    from dataclasses import replace

    from flightmanager.zk import credential

    credential_file = directory / "cluster.credential"
    credential.load_or_create(credential_file)
    with _running_zookeeper(directory / "server") as server:
        yield replace(server, credential_file=credential_file)


@contextmanager
def _running_zookeeper(directory: Path) -> Iterator[ZooKeeperServer]:
    wanted = choice()
    if wanted == "embedded":
        with _embedded(directory) as server:
            yield server
        return
    reason = container_unavailable()
    if reason is None:
        with _container() as server:
            yield server
        return
    if wanted == "container":
        pytest.skip(f"{CHOICE_ENV}=container, but {reason}")
    with _embedded(directory) as server:
        yield server


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ZooKeeperServer]:
    """One ZooKeeper per test module; when the module ends, no node of it may still be
    registered (an ephemeral znode outliving its node means the node did not leave)."""
    with running_zookeeper(tmp_path_factory.mktemp("zookeeper")) as server:
        yield server
        # a node killed on purpose leaves its znodes until its session times out (10 s)
        leaks.check(f"ZooKeeper of {request.module.__name__}", leaks.still_there(lambda: ephemeral_znodes(server)))


def ephemeral_znodes(server: ZooKeeperServer) -> list[str]:
    """Every ephemeral znode on the server, by path."""
    from kazoo.exceptions import NoAuthError, NoNodeError

    client = server.client()
    try:
        found: list[str] = []
        paths = ["/"]
        while paths:
            path = paths.pop()
            try:
                children = client.get_children(path)
            except (NoNodeError, NoAuthError):  # gone meanwhile, or not the cluster's to read
                continue
            for child in children:
                if path == "/" and child == "zookeeper":
                    continue  # the server's own
                child_path = path.rstrip("/") + "/" + child
                stat = client.exists(child_path)
                if stat is None:
                    continue  # gone meanwhile
                if stat.ephemeralOwner:
                    found.append(child_path)
                paths.append(child_path)
        return found
    finally:
        client.stop()
        client.close()
