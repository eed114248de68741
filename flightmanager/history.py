"""Query history: what every query was, kept after its result expires and across restarts.

When a query's result expires, its coordinator adds the query's last status (SQL, user,
outcome, times, error, rows and bytes each node served) to the history.  The history
keeps at most ``size`` entries, none older than ``age`` seconds; the oldest go first.
In a cluster it lives in ZooKeeper (:class:`flightmanager.zk.history.ZooKeeperHistory`),
shared by the nodes and surviving any of them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from flightmanager.status import QueryStatus

DEFAULT_SIZE = 1000
DEFAULT_AGE = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Retention:
    size: int = DEFAULT_SIZE
    age: float = DEFAULT_AGE

    def check(self) -> None:
        if self.size < 0 or self.age <= 0:
            raise ValueError("history-size must be >= 0 and history-age > 0")


class History(Protocol):
    def add(self, query: QueryStatus) -> None: ...

    def recent(self, count: int) -> list[QueryStatus]:
        """The newest ``count`` entries, newest first."""


class MemoryHistory:
    """A history for one process: gone with it."""

    def __init__(self, retention: Retention = Retention()) -> None:
        self.retention = retention
        self._lock = threading.Lock()
        self._entries: deque[tuple[float, QueryStatus]] = deque()

    def add(self, query: QueryStatus) -> None:
        now = time.time()
        with self._lock:
            self._entries.append((now, query))
            while self._entries and (len(self._entries) > self.retention.size
                                     or self._entries[0][0] < now - self.retention.age):
                self._entries.popleft()

    def recent(self, count: int) -> list[QueryStatus]:
        cutoff = time.time() - self.retention.age
        with self._lock:
            return [q for added, q in reversed(self._entries) if added >= cutoff][:max(0, count)]
