"""A local cluster in one command: ZooKeeper, a Hive metastore and N node processes.

ZooKeeper and the metastore run from the jars PySpark ships (no download); each
node is its own ``flightsql serve`` process, as a user would start it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from flightmanager.zk.embedded import EmbeddedZooKeeper, free_port, spark_jars

log = logging.getLogger("flightsql.cluster")


class EmbeddedMetastore:
    """``org.apache.hadoop.hive.metastore.HiveMetaStore`` over Derby, in a child process."""

    def __init__(self, directory: Path, port: int = 0) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"thrift://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "EmbeddedMetastore":
        import socket

        self.directory.mkdir(parents=True, exist_ok=True)
        home = self.directory.resolve()
        log_file = open(self.directory / "metastore.log", "ab")
        self.process = subprocess.Popen(
            ["java", "-Xmx512m", "-Dhive.async.log.enabled=false",
             f"-Djavax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={home / 'metastore_db'};create=true",
             f"-Dhive.metastore.warehouse.dir={home.parent / 'warehouse'}",
             "-Ddatanucleus.schema.autoCreateAll=true", "-Dhive.metastore.schema.verification=false",
             f"-Dderby.system.home={home}",
             "-cp", f"{spark_jars()}/*", "org.apache.hadoop.hive.metastore.HiveMetaStore", "-p", str(self.port)],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the metastore exited; see {self.directory / 'metastore.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.25)  # a child's port: nothing to wait on but the port itself
        self.stop()
        raise RuntimeError(f"the metastore did not start within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


@dataclass
class NodeProcess:
    port: int
    process: subprocess.Popen[str]
    uri: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    lines: list[str] = field(default_factory=list)


class LocalCluster:
    def __init__(self, work_dir: Path, nodes: int, port: int, node_args: Sequence[str]) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.work_dir = work_dir
        self.count = nodes
        self.port = port
        self.node_args = list(node_args)
        self.zookeeper: EmbeddedZooKeeper | None = None
        self.metastore: EmbeddedMetastore | None = None
        self.nodes: list[NodeProcess] = []

    def start(self, timeout: float = 300.0) -> list[str]:
        self.zookeeper = EmbeddedZooKeeper(self.work_dir / "zookeeper").start()
        self.metastore = EmbeddedMetastore(self.work_dir / "metastore").start()
        warehouse = (self.work_dir / "warehouse").resolve()
        for i in range(self.count):
            port = self.port + i if self.port else 0
            command = [
                sys.executable, "-m", "flightsql.cli", "serve", "--port", str(port),
                "--work-dir", str(self.work_dir / f"node-{i}"),
                "--zookeeper", f"{self.zookeeper.connect_string}/flightsql",
                "--metastore", self.metastore.uri,
                "--conf", f"spark.sql.warehouse.dir={warehouse}",
                *self.node_args,
            ]
            process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
            node = NodeProcess(port, process)
            threading.Thread(target=self._pump, args=(i, node), daemon=True).start()
            self.nodes.append(node)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if not node.ready.wait(max(0.0, deadline - time.monotonic())) or node.uri is None:
                tail = "\n".join(node.lines[-20:])
                self.stop()
                raise RuntimeError(f"a node did not become ready:\n{tail}")
        return [node.uri for node in self.nodes if node.uri]

    def _pump(self, index: int, node: NodeProcess) -> None:
        assert node.process.stderr is not None
        for line in node.process.stderr:
            line = line.rstrip()
            node.lines.append(line)
            print(f"[node-{index}] {line}", file=sys.stderr)
            if "ready: Flight SQL at " in line and not node.ready.is_set():
                node.uri = line.split("ready: Flight SQL at ", 1)[1].split()[0]
                node.ready.set()
        node.ready.set()

    def stop(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            try:
                node.process.wait(60)
            except subprocess.TimeoutExpired:
                node.process.kill()
        if self.metastore is not None:
            self.metastore.stop()
        if self.zookeeper is not None:
            self.zookeeper.stop()
