"""Real nodes for integration tests: `flightsql serve` processes started as a user would.

One node (with authentication) is started per test session and shared; a reference
in-process SparkSession answers "what does Spark itself return".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration import leaks

USER, PASSWORD = "alice", "wonderland-3141"
OTHER_USER, OTHER_PASSWORD = "bob", "builder-2718"
READY_TIMEOUT = 240


@dataclass
class RunningNode:
    process: subprocess.Popen
    uri: str
    work_dir: Path
    log_lines: list[str]

    def log(self) -> str:
        return "\n".join(self.log_lines)

    @property
    def internal_uri(self) -> str:
        """Where the node takes pushes, as its ready line says (clients are never told)."""
        ready = next(line for line in self.log_lines if "ready: Flight SQL at " in line)
        return ready.split("(internal ", 1)[1].split(",", 1)[0]


def _add_user(users: Path, user: str, password: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "flightsql.cli", "users", "add", str(users), user, "--password-stdin"],
        input=password + "\n", text=True, check=True, capture_output=True,
    )


def start_node(work_dir: Path, *args: str) -> RunningNode:
    """Start `flightsql serve` and wait (bounded) for its ready line."""
    work_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "flightsql.cli", "serve", "--port", "0", "--work-dir", str(work_dir), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines: list[str] = []
    ready = threading.Event()
    found: dict[str, str] = {}

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip())
            if "ready: Flight SQL at " in line and not ready.is_set():
                found["uri"] = line.split("ready: Flight SQL at ", 1)[1].split()[0]
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(READY_TIMEOUT) or "uri" not in found:
        process.kill()
        raise RuntimeError("node did not become ready:\n" + "\n".join(lines[-40:]))
    return RunningNode(process, found["uri"], work_dir, lines)


def stop_node(node: RunningNode) -> int:
    """Stop at once (SIGINT; SIGTERM would first drain: wait for unread results to be read)."""
    node.process.send_signal(signal.SIGINT)
    try:
        return node.process.wait(60)
    except subprocess.TimeoutExpired:
        node.process.kill()
        return node.process.wait(10)


@pytest.fixture(scope="module", autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a module starts (nodes, clients, threads, files) is gone when it ends."""
    before = leaks.snapshot()
    yield
    leaks.check(request.module.__name__, leaks.left_behind(before))


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    work = tmp_path_factory.mktemp("node")
    users = work / "users"
    _add_user(users, USER, PASSWORD)
    _add_user(users, OTHER_USER, OTHER_PASSWORD)
    with leaks.session_resources():
        running = start_node(
            work, "--users", str(users), "--demo", "--result-ttl", "30",
            "--conf", "spark.sql.session.timeZone=America/New_York",
            "--conf", "spark.driver.memory=1g",
        )
    yield running
    code = stop_node(running)
    assert code == 0, f"node exited with {code}:\n{running.log()[-3000:]}"


def connect(node: RunningNode, user: str = USER, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    import adbc_driver_flightsql.dbapi as flightsql

    return flightsql.connect(node.uri, autocommit=True, db_kwargs={"username": user, "password": password})


@pytest.fixture()
def conn(node: RunningNode):  # type: ignore[no-untyped-def]
    connection = connect(node)
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """The test process's one SparkSession: Spark itself, for reference answers (same session
    time zone as the node), and the Spark that runs the "flightsql" data source. A process has
    one SparkContext, so every test shares it: local[1,4] lets a failed task be retried."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    with leaks.session_resources():
        session = (
            SparkSession.builder.master("local[1,4]").appName("reference")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "America/New_York")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.python.filterPushdown.enabled", "true")
            .config("spark.sql.warehouse.dir", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"ref-wh-{os.getpid()}"))
            .getOrCreate()
        )
    yield session
    session.stop()


def flight_client(node: RunningNode, user: str = USER, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    """A raw pyarrow Flight client, logged in; returns (client, call options)."""
    import pyarrow.flight as flight

    client = flight.connect(node.uri)
    token = client.authenticate_basic_token(user, password)
    return client, flight.FlightCallOptions(headers=[token])


def wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
