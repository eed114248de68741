"""Many hosts on one Linux machine: network namespaces on a private bridge.

Each host is a network namespace with its own address on a bridge that lives in a
namespace of its own (``<prefix>-sw``), so no host has a route off the machine and the
machine's own network is never touched.  Every process started on a host runs in its
namespace under its own hostname (``unshare --uts``); ``/etc/netns/<namespace>/hosts``
(which ``ip netns exec`` puts in place of ``/etc/hosts``) names every host.  A host is
cut off by taking its link on the bridge down.

The cluster on it: ZooKeeper and a Spark standalone master on host ``zk``; a Spark
worker and a node on each of ``h1`` .. ``hN``; clients on host ``client``.

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ``ip``/``unshare``; :func:`unavailable`
says why not where they are missing.

    python -m tests.testbed up 3       # build 3 node hosts and a cluster; Ctrl-C tears down
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from flightmanager.zk import credential as zk_credential
from flightmanager.zk.embedded import spark_jars

ZK_PORT = 2181
MASTER_PORT = 7077
MASTER_UI_PORT = 8080
NODE_PORT = 31337
INTERNAL_PORT = 31338


def unavailable() -> str | None:
    """Why this machine cannot build hosts (None: it can)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "building network namespaces needs root"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"the '{tool}' command is missing"
    probe = f"fsqprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add is not permitted here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _sh(*argv: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    namespace: str
    #: this host's cable: the veth end on the bridge
    link: str


@dataclass
class HostBed:
    """Hosts ``zk``, ``h1``..``hN`` and ``client`` on a private /24."""

    nodes: int
    work_dir: Path
    prefix: str = field(default_factory=lambda: f"fsq{uuid.uuid4().hex[:5]}")
    subnet: str = "10.213.7"
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def names(self) -> list[str]:
        return ["zk", *[f"h{i}" for i in range(1, self.nodes + 1)], "client"]

    def up(self) -> "HostBed":
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def _up(self) -> None:
        _sh("ip", "netns", "add", self.switch)
        _sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for index, name in enumerate(self.names(), start=1):
            host = Host(name, f"{self.subnet}.{index}", f"{self.prefix}-{name}", f"{self.prefix[-5:]}{name}")
            _sh("ip", "netns", "add", host.namespace)
            self.hosts[name] = host
            _sh("ip", "link", "add", host.link, "netns", self.switch, "type", "veth", "peer", "name", "eth0",
                "netns", host.namespace)
            _sh("ip", "-n", self.switch, "link", "set", host.link, "master", "br0")
            _sh("ip", "-n", self.switch, "link", "set", host.link, "up")
            _sh("ip", "-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _sh("ip", "-n", host.namespace, "link", "set", "eth0", "up")
            _sh("ip", "-n", host.namespace, "link", "set", "lo", "up")
        lines = ["127.0.0.1 localhost", *[f"{h.address} {h.name}" for h in self.hosts.values()]]
        for host in self.hosts.values():
            etc = Path("/etc/netns") / host.namespace
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text("\n".join(lines) + "\n")

    # -- processes on hosts ----------------------------------------------------------
    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` as run on ``host``: in its namespace, under its hostname."""
        return ["ip", "netns", "exec", self.hosts[host].namespace, "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', host, *argv]

    def start(self, host: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a process on ``host`` (its output to ``log``); :meth:`down` kills it."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            process = subprocess.Popen(
                self.command(host, argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        self.processes.append((host, process))
        return process

    def run(self, host: str, argv: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(host, argv), capture_output=True, text=True, timeout=timeout)

    # -- faults ------------------------------------------------------------------------
    def cut(self, host: str) -> None:
        """Unplug ``host``: its cable on the bridge goes down (no packet in or out)."""
        _sh("ip", "-n", self.switch, "link", "set", self.hosts[host].link, "down")

    def heal(self, host: str) -> None:
        _sh("ip", "-n", self.switch, "link", "set", self.hosts[host].link, "up")

    def down(self) -> None:
        """Kill every process started here, delete every namespace and hosts file."""
        for _host, process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for _host, process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self.processes.clear()
        # processes left in a namespace (children that escaped their group) die with it
        for host in list(self.hosts.values()):
            pids = subprocess.run(["ip", "netns", "pids", host.namespace], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / host.namespace, ignore_errors=True)
        self.hosts.clear()
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)

    def leftovers(self) -> list[str]:
        """Namespaces of this bed still present (none after :meth:`down`)."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return [line.split()[0] for line in listed.splitlines() if line.startswith(self.prefix)]


def wait(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.25) -> None:
    """Wait for a condition outside this process (a port, a log line): nothing to be woken by."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f}s")
        time.sleep(step)


@dataclass
class NodeOnHost:
    host: str
    uri: str
    log: Path
    process: subprocess.Popen[bytes]
    args: list[str]

    def ready(self) -> bool:
        return self.log.exists() and "ready: Flight SQL at" in self.log.read_text(errors="replace")


@dataclass
class HostCluster:
    """ZooKeeper and a Spark master on ``zk``, a worker and a node on every node host."""

    bed: HostBed
    node_args: list[str] = field(default_factory=list)
    worker_cores: int = 3
    nodes: dict[str, NodeOnHost] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.bed.work_dir

    def master_state(self) -> dict[str, object] | None:
        result = self.bed.run("client", [sys.executable, "-c", (
            "import urllib.request,sys;"
            f"sys.stdout.write(urllib.request.urlopen('http://zk:{MASTER_UI_PORT}/json/', timeout=2).read().decode())")],
            timeout=30)
        try:
            return json.loads(result.stdout) if result.returncode == 0 else None
        except ValueError:
            return None

    def start(self, timeout: float = 300) -> "HostCluster":
        bed, work = self.bed, self.work
        jars = f"{spark_jars()}/*"
        zk_dir = (work / "zookeeper").resolve()
        zk_dir.mkdir(parents=True, exist_ok=True)
        (zk_dir / "zoo.cfg").write_text(
            f"dataDir={zk_dir}\nclientPort={ZK_PORT}\ntickTime=2000\nmaxSessionTimeout=60000\n"
            "admin.enableServer=false\n4lw.commands.whitelist=ruok\n")
        bed.start("zk", ["java", "-Xmx256m", "-cp", jars, "org.apache.zookeeper.server.ZooKeeperServerMain",
                         str(zk_dir / "zoo.cfg")], work / "zookeeper.log")
        bed.start("zk", ["java", "-Xmx256m", "-cp", jars, "org.apache.spark.deploy.master.Master",
                         "--host", "zk", "--port", str(MASTER_PORT), "--webui-port", str(MASTER_UI_PORT)],
                  work / "master.log")
        from flightsql.cluster import scala_version

        worker_env = {"SPARK_HOME": str(spark_jars().parent), "SPARK_SCALA_VERSION": scala_version(),
                      "PYSPARK_PYTHON": sys.executable}
        hosts = [h for h in bed.names() if h.startswith("h")]
        wait(lambda: self.master_state() is not None, timeout, "the Spark master did not answer")
        for host in hosts:
            bed.start(host, ["java", "-Xmx256m", "-cp", jars, "org.apache.spark.deploy.worker.Worker",
                             "--host", host, "--cores", str(self.worker_cores), "--memory", "3g",
                             "--work-dir", str((work / host / "worker").resolve()), "--webui-port", "0",
                             f"spark://zk:{MASTER_PORT}"],
                      work / host / "worker.log", env=worker_env)
        wait(lambda: int((self.master_state() or {}).get("aliveworkers", 0)) >= len(hosts), timeout,  # type: ignore[call-overload]
             f"{len(hosts)} workers did not register")
        self.credential = (work / "zookeeper.credential").resolve()
        if not self.credential.exists():
            zk_credential.create(self.credential)
        for host in hosts:
            self.start_node(host)
        wait(self._all_ready, timeout, "the nodes did not become ready", 0.5)
        return self

    def _all_ready(self) -> bool:
        for node in self.nodes.values():
            if node.process.poll() is not None:
                tail = node.log.read_text(errors="replace").splitlines()[-30:]
                raise RuntimeError(f"the node on {node.host} exited ({node.process.returncode}):\n" + "\n".join(tail))
        return all(n.ready() for n in self.nodes.values())

    def start_node(self, host: str) -> NodeOnHost:
        log = self.work / host / "node.log"
        args = [
            sys.executable, "-m", "flightsql.cli", "serve", "--host", "0.0.0.0", "--port", str(NODE_PORT),
            "--internal-port", str(INTERNAL_PORT), "--work-dir", str((self.work / host / "node").resolve()),
            "--zookeeper", f"zk:{ZK_PORT}/flightsql", "--zookeeper-credential", str(self.credential),
            "--master", f"spark://zk:{MASTER_PORT}",
            "--conf", f"spark.driver.host={host}",
            "--conf", f"spark.cores.max={len(self.bed.names()) - 2}",
            "--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=512m",
            *self.node_args,
        ]
        if log.exists():
            log.write_text("")
        process = self.bed.start(host, args, log)
        node = NodeOnHost(host, f"grpc://{host}:{NODE_PORT}", log, process, args)
        self.nodes[host] = node
        return node


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "check"])
    parser.add_argument("nodes", type=int, nargs="?", default=3)
    parser.add_argument("--work-dir", type=Path, default=Path("work/testbed"))
    args, node_args = parser.parse_known_args(argv)
    reason = unavailable()
    if args.command == "check" or reason:
        print(reason or "this machine can build hosts")
        return 1 if reason else 0
    bed = HostBed(args.nodes, args.work_dir).up()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        cluster = HostCluster(bed, node_args or ["--allow-unauthenticated-remote"]).start()
        print("hosts:")
        for host in bed.hosts.values():
            print(f"  {host.name:7} {host.address:15} ip netns exec {host.namespace} ...")
        for node in cluster.nodes.values():
            print(f"node on {node.host}: {node.uri} (log {node.log})")
        print(f"a client:  ip netns exec {bed.hosts['client'].namespace} {sys.executable} -m flightsql.cli query "
              f"--uri {next(iter(cluster.nodes.values())).uri} 'SELECT 1'")
        print("cut a host off: ip -n", bed.switch, "link set", bed.hosts["h1"].link, "down")
        print("Ctrl-C tears everything down")
        stop.wait()
    finally:
        bed.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
