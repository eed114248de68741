"""What a test module leaves behind: threads, file descriptors and child processes.

Every integration module is checked when it ends (``conftest.py``): whatever it started
must be gone by then, or the check names it.  Resources of session-scoped fixtures (the
shared node, the reference SparkSession) are made inside :func:`session_resources` and
are not counted against the module that happened to start them.  ZooKeeper's own check
(no ephemeral znode outlives its node) is in ``zookeeper.py``.
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


def snapshot() -> Snapshot:
    gc.collect()  # a client nobody holds any more closes its connections here
    threads = {t.ident: t.name for t in threading.enumerate() if t.ident is not None and t.is_alive()}
    fds: dict[int, str] = {}
    for entry in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(entry)
            if _counted(target):
                fds[int(entry.name)] = target
    return Snapshot(threads, fds, _descendants(os.getpid()))


def _counted(target: str) -> bool:
    """Connections and files count. Pipes, event polls and the cgroup files gRPC and Arrow
    open once per process, on first use, do not: a leaked child process shows as itself."""
    if target.startswith("socket:"):
        return True
    return target.startswith("/") and not target.startswith(("/sys/", "/proc/", "/dev/"))


def _descendants(root: int) -> dict[int, str]:
    parents: dict[int, int] = {}
    lines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if state == "Z":
                lines[int(entry.name)] = "(exited, never waited for)"
            else:
                lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
            parents[int(entry.name)] = int(ppid)
        except (OSError, ValueError, IndexError):
            continue
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = lines[pid]
                frontier.append(pid)
    return found


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
