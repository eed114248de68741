"""A local cluster in one command: ZooKeeper, a Hive metastore, optionally a Spark
standalone master with workers, and N node processes.

Every part runs from the jars PySpark ships (no download).  Each node is its own
``flightsql serve`` process, as a user would start it.  With workers, each node is a
Spark application on the standalone master with its share of the workers' cores;
without, each node runs Spark in ``local`` mode.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightmanager.process import dies_with_parent
from flightmanager.zk import credential as zk_credential
from flightmanager.zk.embedded import EmbeddedZooKeeper, free_port, spark_jars
from flightsql.settings import parse_size

log = logging.getLogger("flightsql.cluster")

LOOPBACK = "127.0.0.1"


def _poll(condition: Callable[[], bool], timeout: float, what: str, alive: JavaDaemon) -> None:
    """Wait, bounded, for a child process to reach a state only visible from outside
    (a port, an HTTP page): there is nothing to block on but polling it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive.check()
        if condition():
            return
        time.sleep(0.25)
    alive.stop()
    raise RuntimeError(f"{what} within {timeout:.0f}s; see {alive.log_path}")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


class JavaDaemon:
    """A JVM running a main class from PySpark's jars in a child process (its own
    session, so a terminal's Ctrl-C reaches the cluster, which stops it in order)."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        #: JVM options and environment added to the daemon's own (Spark's RPC security)
        self.java_options: tuple[str, ...] = ()
        self.environment: dict[str, str] = {}

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    def launch(self, java_options: Sequence[str], main_class: str, args: Sequence[str],
               env: dict[str, str] | None = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                ["java", *self.java_options, *java_options, "-cp", f"{spark_jars()}/*", main_class, *args],
                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **self.environment, **(env or {})}, cwd=self.directory,
                preexec_fn=dies_with_parent(),
            )

    def check(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise RuntimeError(f"the {self.name} exited ({code}); see {self.log_path}")

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self, timeout: float = 30.0) -> None:
        self.terminate()
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


class EmbeddedMetastore(JavaDaemon):
    """``org.apache.hadoop.hive.metastore.HiveMetaStore`` over Derby."""

    def __init__(self, directory: Path, port: int = 0) -> None:
        super().__init__("metastore", directory)
        self.port = port or free_port()

    @property
    def uri(self) -> str:
        return f"thrift://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 120.0) -> EmbeddedMetastore:
        home = self.directory.resolve()
        self.launch(
            ["-Xmx512m", "-Dhive.async.log.enabled=false", "-Dhive.root.logger=console",
             f"-Djavax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={home / 'metastore_db'};create=true",
             f"-Dhive.metastore.warehouse.dir={home.parent / 'warehouse'}",
             "-Ddatanucleus.schema.autoCreateAll=true", "-Dhive.metastore.schema.verification=false",
             f"-Dderby.system.home={home}"],
            "org.apache.hadoop.hive.metastore.HiveMetaStore", ["-p", str(self.port)],
        )
        _poll(lambda: _port_open(self.port), timeout, "the metastore did not open its port", self)
        return self


class SparkMaster(JavaDaemon):
    """``org.apache.spark.deploy.master.Master`` on loopback."""

    def __init__(self, directory: Path) -> None:
        super().__init__("master", directory)
        self.port = free_port()
        self.ui_port = free_port()

    @property
    def url(self) -> str:
        return f"spark://{LOOPBACK}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ui_port}"

    def start(self, timeout: float = 120.0) -> SparkMaster:
        self.launch(["-Xmx256m"], "org.apache.spark.deploy.master.Master",
                    ["--host", LOOPBACK, "--port", str(self.port), "--webui-port", str(self.ui_port)])
        _poll(lambda: self.state() is not None, timeout, "the Spark master did not answer", self)
        return self

    def state(self) -> dict[str, object] | None:
        """The master's own account of its workers and applications (its UI's JSON)."""
        try:
            with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=2) as response:  # noqa: S310 - http, ours
                state: dict[str, object] = json.loads(response.read())
                return state
        except (OSError, ValueError):
            return None

    def wait_for_workers(self, count: int, timeout: float = 120.0) -> None:
        def registered() -> bool:
            alive: Any = (self.state() or {}).get("aliveworkers", 0)
            return int(alive) >= count

        _poll(registered, timeout, f"{count} workers did not register with the Spark master", self)


class SparkWorker(JavaDaemon):
    """``org.apache.spark.deploy.worker.Worker``: launches the executors of every node.

    Its executors find Spark's jars through SPARK_HOME (PySpark's directory) and run
    Python workers with this interpreter, which has this package installed."""

    def __init__(self, index: int, directory: Path, master: SparkMaster, cores: int, memory: str) -> None:
        super().__init__(f"worker-{index}", directory)
        self.master = master
        self.cores = cores
        self.memory = memory

    def start(self) -> SparkWorker:
        self.launch(
            ["-Xmx256m"], "org.apache.spark.deploy.worker.Worker",
            ["--host", LOOPBACK, "--cores", str(self.cores), "--memory", self.memory,
             "--work-dir", str(self.directory.resolve() / "work"), "--webui-port", "0", self.master.url],
            env={"SPARK_HOME": str(spark_jars().parent), "SPARK_SCALA_VERSION": scala_version(),
                 "PYSPARK_PYTHON": sys.executable},
        )
        return self


def scala_version() -> str:
    """The Scala version of PySpark's jars.  A worker building an executor's command
    needs it when SPARK_HOME is not a Spark distribution (as PySpark's directory is not)."""
    for jar in spark_jars().glob("spark-core_*.jar"):
        return jar.name.split("_", 1)[1].split("-", 1)[0]
    raise FileNotFoundError(f"no spark-core jar in {spark_jars()}")


@dataclass
class NodeProcess:
    """One node of the cluster, restarted with backoff whenever it exits on its own."""

    index: int
    command: list[str]
    process: subprocess.Popen[str] | None = None
    uri: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    lines: list[str] = field(default_factory=list)
    restarts: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    #: first wait before a restart; doubled after each quick exit, up to RESTART_MAX
    RESTART_FIRST = 1.0
    RESTART_MAX = 60.0

    def supervise(self) -> None:
        """Run the node; when it exits unasked, say so and start it again after a backoff
        that doubles while it keeps exiting within a minute of its start."""
        backoff = self.RESTART_FIRST
        while True:
            started = time.monotonic()
            self.process = subprocess.Popen(
                self.command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                preexec_fn=dies_with_parent(),
            )
            self._pump()
            code = self.process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - started > 60:
                backoff = self.RESTART_FIRST
            self.restarts += 1
            log.warning("node-%d exited with code %s; restarting it in %.0fs (restart %d)",
                        self.index, code, backoff, self.restarts)
            if self.stopping.wait(backoff):
                return
            backoff = min(backoff * 2, self.RESTART_MAX)

    def _pump(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            line = line.rstrip()
            self.lines.append(line)
            del self.lines[:-200]
            print(f"[node-{self.index}] {line}", file=sys.stderr)
            if "ready: Flight SQL at " in line:
                self.uri = line.split("ready: Flight SQL at ", 1)[1].split()[0]
                if self.restarts:
                    log.info("node-%d is back at %s", self.index, self.uri)
                self.ready.set()
        if not self.ready.is_set() and self.restarts == 0:
            self.ready.set()  # it never came up: start() reports its last lines


@dataclass(frozen=True)
class Topology:
    """How many of each process, and each node's share of the workers."""

    nodes: int
    workers: int = 0
    worker_cores: int = 1
    executor_memory: str = "512m"

    def check(self, node_args: Sequence[str]) -> None:
        if self.nodes < 1:
            raise ValueError("a cluster needs at least one node")
        if self.workers < 0 or self.worker_cores < 1:
            raise ValueError("--workers must be >= 0 and --worker-cores >= 1")
        if not self.workers:
            return
        if self.workers * self.worker_cores < self.nodes:
            raise ValueError(
                f"{self.workers} worker(s) with {self.worker_cores} core(s) each cannot give each of "
                f"{self.nodes} nodes a core: raise --workers or --worker-cores"
            )
        if any(arg == "--master" or arg.startswith("--master=") for arg in node_args):
            raise ValueError("--master is the cluster's own Spark master when --workers is set")
        try:
            parse_size(self.executor_memory)
        except ValueError:
            raise ValueError(f"--executor-memory is not a size: {self.executor_memory!r}") from None

    @property
    def cores_per_node(self) -> int:
        return self.workers * self.worker_cores // self.nodes

    @property
    def worker_memory(self) -> str:
        """Room for one executor of one core per core of the worker, whichever nodes they serve."""
        return f"{parse_size(self.executor_memory) * self.worker_cores // (1 << 20)}m"

    def node_args(self, master: SparkMaster) -> list[str]:
        return [
            "--master", master.url,
            "--conf", f"spark.cores.max={self.cores_per_node}",
            "--conf", "spark.executor.cores=1",
            "--conf", f"spark.executor.memory={self.executor_memory}",
            "--conf", f"spark.driver.host={LOOPBACK}",
        ]


@dataclass(frozen=True)
class ClusterSecurity:
    """What ``--tls`` gives a local cluster: node certificates from a development CA, and
    Spark's RPC authenticated with a shared secret and encrypted.

    The secret reaches the master and workers in their environment and the nodes in a
    settings file (mode 0600): never on a command line, which every local user can read."""

    directory: Path

    @classmethod
    def create(cls, directory: Path) -> ClusterSecurity:
        import secrets

        from flightsql.certificates import default_hosts, issue

        issue(directory, "node", default_hosts())
        secret = directory / "spark-auth.conf"
        if not secret.exists():
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write("spark.authenticate true\nspark.network.crypto.enabled true\n"
                          f"spark.authenticate.secret {secrets.token_hex(32)}\n")
        return cls(directory)

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def secret(self) -> str:
        for line in (self.directory / "spark-auth.conf").read_text().splitlines():
            if line.startswith("spark.authenticate.secret "):
                return line.split(" ", 1)[1].strip()
        raise ValueError(f"no spark.authenticate.secret in {self.directory / 'spark-auth.conf'}")

    def node_args(self, standalone: bool) -> list[str]:
        args = ["--tls-cert", str(self.directory / "node.pem"), "--tls-key", str(self.directory / "node-key.pem"),
                "--tls-ca", str(self.ca)]
        return args + (["--config", str(self.directory / "spark-auth.conf")] if standalone else [])

    def daemon_options(self) -> tuple[tuple[str, ...], dict[str, str]]:
        """JVM options and environment of the master and the workers (which hand the secret
        on to the executors they launch)."""
        return (("-Dspark.authenticate=true", "-Dspark.network.crypto.enabled=true"),
                {"_SPARK_AUTH_SECRET": self.secret()})


class LocalCluster:
    def __init__(self, work_dir: Path, topology: Topology, port: int, node_args: Sequence[str],
                 tls: bool = False) -> None:
        self.topology = topology
        self.node_args = list(node_args)
        self.topology.check(self.node_args)
        self.tls = tls
        if tls and topology.workers and any(a == "--config" or a.startswith("--config=") for a in self.node_args):
            raise ValueError("--tls with --workers gives the nodes a settings file of its own: "
                             "pass Spark settings with --conf instead of --config")
        self.work_dir = work_dir
        self.port = port
        self.zookeeper: EmbeddedZooKeeper | None = None
        self.metastore: EmbeddedMetastore | None = None
        self.master: SparkMaster | None = None
        self.workers: list[SparkWorker] = []
        self.nodes: list[NodeProcess] = []

    def start(self, timeout: float = 300.0) -> list[str]:
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> list[str]:
        topology = self.topology
        security = ClusterSecurity.create((self.work_dir / "tls").resolve()) if self.tls else None
        self.zookeeper = EmbeddedZooKeeper(self.work_dir / "zookeeper").start()
        self.metastore = EmbeddedMetastore(self.work_dir / "metastore").start()
        spark_args: list[str] = []
        if topology.workers:
            self.master = SparkMaster(self.work_dir / "master")
            self.workers = [
                SparkWorker(i, self.work_dir / f"worker-{i}", self.master, topology.worker_cores,
                            topology.worker_memory)
                for i in range(topology.workers)
            ]
            for daemon in (self.master, *self.workers):
                if security is not None:
                    daemon.java_options, daemon.environment = security.daemon_options()
            self.master.start()
            for worker in self.workers:
                worker.start()
            self.master.wait_for_workers(topology.workers)
            spark_args = topology.node_args(self.master)
            log.info("Spark master %s (UI %s) with %d workers of %d cores; %d cores per node",
                     self.master.url, self.master.ui_url, topology.workers, topology.worker_cores,
                     topology.cores_per_node)
        warehouse = (self.work_dir / "warehouse").resolve()
        # one ZooKeeper credential for the whole cluster: its znodes are the nodes' alone
        credential = (self.work_dir / "zookeeper.credential").resolve()
        zk_credential.load_or_create(credential)
        # The demo table is one table of the shared catalog: the first node creates it.
        demo = "--demo" in self.node_args
        common = [arg for arg in self.node_args if arg != "--demo"]
        for i in range(topology.nodes):
            port = self.port + i if self.port else 0
            command = [
                sys.executable, "-m", "flightsql.cli", "serve", "--port", str(port),
                "--work-dir", str(self.work_dir / f"node-{i}"),
                "--zookeeper", f"{self.zookeeper.connect_string}/flightsql",
                "--zookeeper-credential", str(credential),
                "--metastore", self.metastore.uri,
                "--conf", f"spark.sql.warehouse.dir={warehouse}",
                "--conf", f"spark.app.name=flightsql-node-{i}",
                *spark_args,
                *(security.node_args(bool(topology.workers)) if security else []),
                *common,
                *(["--demo"] if demo and i == 0 else []),
            ]
            node = NodeProcess(i, command)
            threading.Thread(target=node.supervise, name=f"node-{i}", daemon=True).start()
            self.nodes.append(node)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if not node.ready.wait(max(0.0, deadline - time.monotonic())) or node.uri is None:
                tail = "\n".join(node.lines[-20:])
                raise RuntimeError(f"a node did not become ready:\n{tail}")
        return [node.uri for node in self.nodes if node.uri]

    def stop(self) -> None:
        """Stop the nodes (their applications end and free the executors), then the
        workers (which end any executor left), the master, the metastore and ZooKeeper."""
        for node in self.nodes:
            node.stopping.set()
            if node.process is not None and node.process.poll() is None:
                # the whole cluster stops: no node to drain to (SIGTERM would drain first)
                node.process.send_signal(signal.SIGINT)
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(60)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(10)
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.stop()
        for daemon in (self.master, self.metastore):
            if daemon is not None:
                daemon.stop()
        if self.zookeeper is not None:
            self.zookeeper.stop()
