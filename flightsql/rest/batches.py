"""Livy batches: ``spark-submit`` runs, launched by a node against its master, recorded in
ZooKeeper so that any node answers for them::

    <root>/rest/batches/<id>        a batch as JSON (<id>: a sequence number)
    <root>/rest/batches/<id>/log    the last lines of its driver's log, as JSON

The launching node watches its batches: their state (from the driver's log and exit),
their application id, their log, and a kill asked for on any node.  The driver runs in a
process group of its own, so it outlives a restart of the node, which adopts it again at
start; a driver that ended meanwhile is marked by its exit code, or ``dead`` with the
reason.  A batch runs application code as the node's operating-system user: batches are
off unless the operator allows them (``--rest-batches``), and with an authorization policy
only its admins may submit one."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from flightsql.rest.store import compare_and_set, create_numbered

log = logging.getLogger(__name__)

#: lines of a driver's log the record keeps, and the longest line kept
LOG_LINES, LOG_LINE_CHARS = 500, 400
#: Livy's batch states used here
STARTING, RUNNING, SUCCESS, DEAD, KILLED = "starting", "running", "success", "dead", "killed"
FINISHED = (SUCCESS, DEAD, KILLED)
_APP_ID = re.compile(r"\b(app-\d{14}-\d{4}|local-\d{10,})\b")
_SETTING = re.compile(r"[A-Za-z0-9_.\-]+")
#: Livy's request fields that become spark-submit options
_OPTIONS = {"driverMemory": "--driver-memory", "driverCores": "--driver-cores",
            "executorMemory": "--executor-memory", "executorCores": "--executor-cores",
            "numExecutors": "--num-executors", "queue": "--queue", "name": "--name"}
_LISTS = {"jars": "--jars", "pyFiles": "--py-files", "files": "--files", "archives": "--archives"}


class BatchError(ValueError):
    """A batch request that cannot run as asked."""


@dataclass
class Batch:
    id: int
    owner: str
    node: str
    request: dict[str, Any]
    created: float
    state: str = STARTING
    pid: int | None = None
    app_id: str | None = None
    reason: str | None = None
    kill: bool = False
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "owner": self.owner, "node": self.node, "request": self.request,
                "created": self.created, "state": self.state, "pid": self.pid, "app_id": self.app_id,
                "reason": self.reason, "kill": self.kill}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Batch:
        return cls(int(doc["id"]), str(doc["owner"]), str(doc["node"]), dict(doc.get("request") or {}),
                   float(doc["created"]), str(doc.get("state") or STARTING), doc.get("pid"), doc.get("app_id"),
                   doc.get("reason"), bool(doc.get("kill")))

    def livy(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.request.get("name"), "owner": self.owner, "proxyUser": self.owner,
                "state": self.state, "appId": self.app_id,
                "appInfo": {"driverLogUrl": None, "sparkUiUrl": None}, "log": self.log[-100:]}


def submit_command(request: dict[str, Any], master: str, spark_home: Path) -> list[str]:
    """The spark-submit command line of a Livy batch request (checked field by field)."""
    file = request.get("file")
    if not isinstance(file, str) or not file.strip():
        raise BatchError("file must name the application (a .py file or a jar)")
    command = [str(spark_home / "bin" / "spark-submit"), "--master", master, "--deploy-mode", "client"]
    class_name = request.get("className")
    if class_name is not None:
        if not isinstance(class_name, str) or not re.fullmatch(r"[A-Za-z0-9_.$]+", class_name):
            raise BatchError("className must be a Java class name")
        command += ["--class", class_name]
    for name, flag in _OPTIONS.items():
        value = request.get(name)
        if value is not None:
            if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value).startswith("-"):
                raise BatchError(f"{name} must be a string or a number")
            command += [flag, str(value)]
    for name, flag in _LISTS.items():
        values = request.get(name)
        if values:
            if not isinstance(values, list) or not all(isinstance(v, str) and v and "," not in v for v in values):
                raise BatchError(f"{name} must be a list of paths")
            command += [flag, ",".join(values)]
    conf = request.get("conf") or {}
    if not isinstance(conf, dict):
        raise BatchError("conf must be an object of settings")
    for key, value in conf.items():
        if not _SETTING.fullmatch(str(key)) or not isinstance(value, (str, int, float, bool)):
            raise BatchError(f"invalid setting {key!r}")
        command += ["--conf", f"{key}={value}"]
    args = request.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
        raise BatchError("args must be a list of strings")
    return [*command, file, *(str(a) for a in args)]


class BatchStore:
    def __init__(self, zk: KazooClient, root: str) -> None:
        self.zk = zk
        self.base = ("" if root == "/" else root) + "/rest/batches"
        zk.ensure_path(self.base)

    def _path(self, batch_id: int) -> str:
        return f"{self.base}/{batch_id:010d}"

    def create(self, make: Callable[[int], Batch]) -> Batch:
        path, batch_id = create_numbered(self.zk, self.base)
        batch = make(batch_id)
        self.zk.set(path, json.dumps(batch.to_dict()).encode())
        self.zk.create(path + "/log", b"[]")
        return batch

    def get(self, batch_id: int, with_log: bool = True) -> Batch | None:
        try:
            data, _ = self.zk.get(self._path(batch_id))
            doc = json.loads(data or b"{}")
            if not doc:
                return None
            batch = Batch.from_dict(doc)
            if with_log:
                batch.log = json.loads(self.zk.get(self._path(batch_id) + "/log")[0] or b"[]")
            return batch
        except NoNodeError:
            return None

    def all(self) -> list[Batch]:
        found = (self.get(int(n), with_log=False) for n in sorted(self.zk.get_children(self.base)) if n.isdigit())
        return [b for b in found if b is not None]

    def update(self, batch_id: int, change: Callable[[Batch], Any]) -> Batch | None:
        return compare_and_set(self.zk, self._path(batch_id), Batch.from_dict, change, Batch.to_dict)

    def set_log(self, batch_id: int, lines: list[str]) -> None:
        with contextlib.suppress(NoNodeError):
            self.zk.set(self._path(batch_id) + "/log", json.dumps(lines).encode())

    def delete(self, batch_id: int) -> None:
        with contextlib.suppress(NoNodeError):
            self.zk.delete(self._path(batch_id), recursive=True)


class Batches:
    """Launches and watches this node's batches."""

    def __init__(self, store: BatchStore, node_id: str, master: str, work_dir: Path, limit: int) -> None:
        self.store = store
        self.node_id = node_id
        self.master = master
        self.work_dir = work_dir
        self.limit = limit
        self._watched: dict[int, threading.Thread] = {}
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def running(self) -> int:
        with self._lock:
            return sum(1 for t in self._watched.values() if t.is_alive())

    def full(self) -> bool:
        return self.running >= self.limit

    def _files(self, batch_id: int) -> tuple[Path, Path]:
        directory = self.work_dir / f"{batch_id:010d}"
        return directory / "driver.log", directory / "exit"

    def launch(self, owner: str, request: dict[str, Any]) -> Batch:
        import pyspark

        spark_home = Path(pyspark.__file__).resolve().parent
        command = submit_command(request, self.master, spark_home)
        batch = self.store.create(lambda bid: Batch(bid, owner, self.node_id, request, time.time()))
        log_file, exit_file = self._files(batch.id)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # a wrapper in a process group of its own: the driver outlives the node, and its
        # exit code is kept in a file for the node that adopts it again
        wrapper = ['sh', '-c', '"$@" >"$FLIGHTSQL_BATCH_LOG" 2>&1; echo $? >"$FLIGHTSQL_BATCH_EXIT"',
                   f"flightsql-batch-{batch.id}", *command]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("_SPARK_AUTH", "PYSPARK_SUBMIT"))}
        env.update(SPARK_HOME=str(spark_home), PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                   FLIGHTSQL_BATCH_LOG=str(log_file), FLIGHTSQL_BATCH_EXIT=str(exit_file))
        process = subprocess.Popen(wrapper, env=env, cwd=log_file.parent, start_new_session=True,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.store.update(batch.id, lambda b: setattr(b, "pid", process.pid))
        batch.pid = process.pid
        with self._lock:
            self._children[batch.id] = process
        self._watch(batch.id)
        log.info("batch %s of %s launched (pid %s): %s", batch.id, owner, process.pid, " ".join(command[-2:]))
        return batch

    def adopt(self) -> None:
        """At start: watch again the batches this node launched before it restarted."""
        for batch in self.store.all():
            if batch.node == self.node_id and batch.state not in FINISHED:
                log.info("batch %s: adopted again (pid %s)", batch.id, batch.pid)
                self._watch(batch.id)

    def _watch(self, batch_id: int) -> None:
        thread = threading.Thread(target=self._follow, args=(batch_id,), name=f"batch-{batch_id}", daemon=True)
        with self._lock:
            self._watched[batch_id] = thread
        thread.start()

    def _alive(self, batch_id: int, pid: int | None) -> bool:
        with self._lock:
            child = self._children.get(batch_id)
        if child is not None:
            return child.poll() is None
        if pid is None:
            return False
        try:  # an adopted driver: the wrapper still runs, and is this batch's
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return f"flightsql-batch-{batch_id}".encode() in cmdline and stat.split(")")[-1].split()[0] != "Z"

    def _follow(self, batch_id: int) -> None:
        log_file, exit_file = self._files(batch_id)
        shown: list[str] = []
        while not self._stopped.is_set():
            batch = self.store.get(batch_id, with_log=False)
            if batch is None:
                return
            lines = _tail(log_file)
            if lines != shown:
                self.store.set_log(batch_id, lines)
                shown = lines
            alive = self._alive(batch_id, batch.pid)
            if batch.kill and alive and batch.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(batch.pid, signal.SIGTERM)
                self.store.update(batch_id, _killed)
                return
            if not alive:
                self._end(batch_id, exit_file)
                self.store.set_log(batch_id, _tail(log_file))
                return
            app_id = next((m.group(1) for line in lines for m in [_APP_ID.search(line)] if m), None)
            started = any("Running Spark version" in line for line in lines)

            def progress(b: Batch, app_id: str | None = app_id, started: bool = started) -> None:
                b.app_id = b.app_id or app_id
                if started and b.state == STARTING:
                    b.state = RUNNING

            if (app_id and not batch.app_id) or (started and batch.state == STARTING):
                self.store.update(batch_id, progress)
            self._stopped.wait(1.0)

    def _end(self, batch_id: int, exit_file: Path) -> None:
        try:
            code: int | None = int(exit_file.read_text().strip())
        except (OSError, ValueError):
            code = None

        def end(b: Batch) -> None:
            if b.state in FINISHED:
                return
            if code == 0:
                b.state, b.reason = SUCCESS, None
            else:
                b.state = DEAD
                b.reason = (f"the driver exited with code {code}" if code is not None
                            else "the driver ended without an exit code (its node or host stopped it)")

        self.store.update(batch_id, end)

    def stop(self) -> None:
        """Stop watching; the drivers go on (the node adopts them again when it starts)."""
        self._stopped.set()


def _tail(path: Path) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_LINES * 200))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line[:LOG_LINE_CHARS] for line in text.splitlines()[-LOG_LINES:]]


def _killed(batch: Batch) -> None:
    batch.state, batch.reason = KILLED, "killed on request"
