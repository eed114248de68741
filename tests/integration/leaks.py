"""What a test module leaves behind: threads, connections and files, and child processes.

Every integration module is checked when it ends (``conftest.py``): whatever it started
must be gone by then, or the check names it.  Resources of session-scoped fixtures (the
shared node, the reference SparkSession, the JDBC driver's JVM) are made inside
:func:`session_resources` and are not counted against the module that happened to start
them, nor are what those processes start later (Spark's Python workers) or connections
between them and this process.  Of the descriptors, TCP sockets and files count: socket
pairs, pipes and event polls are libraries' own wake-up channels, opened once per process.  ZooKeeper's own check (no ephemeral znode outlives its node) is in ``zookeeper.py``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: how long a module's resources may take to go once it ended (a node's JVM exits, a
#: reader thread sees its stream close): polled, not slept
GRACE_SECONDS = 30.0
_LISTEN = "0A"


@dataclass
class Snapshot:
    threads: dict[int, str] = field(default_factory=dict)
    fds: dict[int, str] = field(default_factory=dict)
    children: dict[int, str] = field(default_factory=dict)

    def minus(self, other: Snapshot) -> Snapshot:
        return Snapshot(
            {k: v for k, v in self.threads.items() if k not in other.threads},
            {k: v for k, v in self.fds.items() if other.fds.get(k) != v},
            {k: v for k, v in self.children.items() if k not in other.children},
        )

    def items(self) -> list[str]:
        return ([f"thread {name}" for name in self.threads.values()]
                + [f"descriptor {fd} -> {target}" for fd, target in sorted(self.fds.items())]
                + [f"process {pid}: {line}" for pid, line in sorted(self.children.items())])


_kept = Snapshot()


@dataclass
class _Process:
    parent: int
    line: str


def _processes() -> dict[int, _Process]:
    found: dict[int, _Process] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            line = ("(exited, never waited for)" if state == "Z"
                    else (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
            found[int(entry.name)] = _Process(int(ppid), line)
        except (OSError, ValueError, IndexError):
            continue
    return found


def _under(pid: int, roots: set[int], processes: dict[int, _Process]) -> bool:
    """Whether ``pid`` is one of ``roots`` or descends from one."""
    seen = set()
    while pid in processes and pid not in seen:
        if pid in roots:
            return True
        seen.add(pid)
        pid = processes[pid].parent
    return pid in roots


def _tcp() -> dict[str, tuple[int, int, str]]:
    """TCP sockets by inode: (local port, remote port, state)."""
    sockets: dict[str, tuple[int, int, str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9:
                    local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
                    sockets[fields[9]] = (local, remote, fields[3])
    return sockets


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for entry in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(entry)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:["):-1])
    return inodes


def snapshot() -> Snapshot:
    gc.collect()  # a client nobody holds any more closes its connections here
    threads = {t.ident: t.name for t in threading.enumerate() if t.ident is not None and t.is_alive()}
    processes = _processes()
    me = os.getpid()
    kept = set(_kept.children)
    children = {pid: p.line for pid, p in processes.items()
                if pid != me and _under(pid, {me}, processes) and not _under(pid, kept, processes)}
    tcp = _tcp()
    # the session's processes' sockets: a connection to one of them is the session's
    session_sockets = [tcp[inode] for pid, p in processes.items() if _under(pid, kept, processes)
                       for inode in _socket_inodes(pid) if inode in tcp]
    session_ports = {local for local, _, state in session_sockets if state == _LISTEN}
    session_peers = {(local, remote) for local, remote, state in session_sockets if state != _LISTEN}
    session_remotes = {remote for _, remote, state in session_sockets if state != _LISTEN}
    fds: dict[int, str] = {}
    for entry in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(entry)
            inode = target[len("socket:["):-1] if target.startswith("socket:[") else ""
            if inode in tcp:  # a TCP connection or listener (socket pairs and the like are libraries' own)
                local, remote, state = tcp[inode]
                session = (remote in session_ports or (remote, local) in session_peers
                           or (state == _LISTEN and local in session_remotes))  # e.g. PySpark's callback server
                if not session:
                    fds[int(entry.name)] = f"{target} (port {local} -> {remote})"
            elif target.startswith("/") and not target.startswith(("/sys/", "/proc/", "/dev/")):
                fds[int(entry.name)] = target
    return Snapshot(threads, fds, children)


@contextlib.contextmanager
def session_resources() -> Iterator[None]:
    """What is started inside lives for the whole session: no module's leak."""
    before = snapshot()
    yield
    made = snapshot().minus(before)
    _kept.threads.update(made.threads)
    _kept.fds.update(made.fds)
    _kept.children.update(made.children)


def left_behind(before: Snapshot, timeout: float = GRACE_SECONDS) -> list[str]:
    """What was made since ``before`` and is still there ``timeout`` seconds on."""
    return still_there(lambda: snapshot().minus(before).minus(_kept).items(), timeout)


def still_there(probe: Callable[[], list[str]], timeout: float = GRACE_SECONDS) -> list[str]:
    """What ``probe`` still finds after ``timeout`` seconds, waiting only as long as it finds something."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        found = probe()
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def check(what: str, left: list[str]) -> None:
    """Fail naming what ``what`` left behind (or, with FLIGHTSQL_LEAK_REPORT=FILE, note it there)."""
    report = os.environ.get("FLIGHTSQL_LEAK_REPORT")
    if report:  # calibration: record instead of failing
        with open(report, "a") as out:
            out.write(f"{what}: {left}\n")
    else:
        assert not left, f"{what} left behind:\n" + "\n".join(left)
