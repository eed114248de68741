"""A real ZooKeeper server for local use, started from the jars PySpark ships."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

from flightmanager.process import dies_with_parent

log = logging.getLogger(__name__)


def spark_jars() -> Path:
    import pyspark

    home = os.environ.get("SPARK_HOME")
    jars = Path(home) / "jars" if home else Path(pyspark.__file__).parent / "jars"
    if not any(jars.glob("zookeeper-*.jar")):
        raise FileNotFoundError(f"no ZooKeeper jar in {jars}")
    return jars


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedZooKeeper:
    """``org.apache.zookeeper.server.ZooKeeperServerMain`` in a child process."""

    def __init__(self, data_dir: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> EmbeddedZooKeeper:
        # ZooKeeper's snapshots and transaction log hold the cluster secret: for this user alone
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        for path in self.data_dir.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)
        config = self.data_dir / "zoo.cfg"
        config.write_text(
            f"dataDir={self.data_dir.resolve()}\nclientPort={self.port}\nclientPortAddress={self.host}\n"
            "tickTime=2000\nmaxSessionTimeout=60000\nadmin.enableServer=false\n"
            "4lw.commands.whitelist=ruok\n"
        )
        config.chmod(0o600)
        log_fd = os.open(self.data_dir / "zookeeper.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        log_file = os.fdopen(log_fd, "ab")
        self.process = subprocess.Popen(
            ["java", "-Xmx256m", "-Dzookeeper.admin.enableServer=false", "-cp", f"{spark_jars()}/*",
             "org.apache.zookeeper.server.ZooKeeperServerMain", str(config)],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, umask=0o077,
            preexec_fn=dies_with_parent(),  # a node killed with SIGKILL leaves no ZooKeeper behind
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"ZooKeeper exited with {code}; see {self.data_dir}/zookeeper.log")
            if self._ok():
                log.info("embedded ZooKeeper at %s (data %s)", self.connect_string, self.data_dir)
                return self
            time.sleep(0.2)  # a child process's port: nothing to wait on but the port itself
        self.stop()
        raise RuntimeError(f"ZooKeeper did not start within {timeout}s")

    def _ok(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"ruok")
                return sock.recv(4) == b"imok"
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
