"""One write into a table at a time, across the cluster.

Spark writes a file-based table through Hadoop's output committer, which stages every job's
files in one ``_temporary`` directory under the table: two jobs writing into one table at
once (two ingests, two INSERTs, on one node or on two) clean up each other's staging, and
one fails with the other's files half committed.  So every write into a table holds that
table's lock (a ZooKeeper lock on a node, so that it holds for the cluster) while Spark
runs it; other writes into the table wait their turn, up to a limit, and then fail with
ABORTED, the table named.  Writes into different tables run at once.

Each write also bumps its tables' versions (ZooKeeper znode versions on a node), whatever
its outcome: answers kept from before it are stale (:mod:`flightsql.server.result_cache`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Protocol

from flightsql.errors import Aborted

if TYPE_CHECKING:
    from kazoo.client import KazooClient

    from flightmanager.zk.paths import Paths

log = logging.getLogger(__name__)

DEFAULT_WAIT = 300.0


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> object: ...


def table_key(table: str) -> str:
    return hashlib.sha256(table.lower().encode()).hexdigest()[:40]


class TableWrites:
    """Locks on tables being written; ``client=None``: this process's own locks."""

    def __init__(self, client: KazooClient | None = None, paths: Paths | None = None,
                 wait: float = DEFAULT_WAIT, holder: str = "") -> None:
        self._client, self._paths, self.wait, self._holder = client, paths, wait, holder
        self._local: dict[str, threading.Lock] = {}
        self._versions: dict[str, int] = {}
        self._guard = threading.Lock()

    def _lock(self, table: str) -> _Lock:
        key = table_key(table)
        if self._client is not None and self._paths is not None:
            lock: _Lock = self._client.Lock(self._paths.writes(key), self._holder)
            return lock
        with self._guard:
            return self._local.setdefault(key, threading.Lock())

    def version(self, table: str) -> int:
        """How many writes into ``table`` the cluster has seen (-1: none yet)."""
        key = table_key(table)
        if self._client is not None and self._paths is not None:
            stat = self._client.retry(self._client.exists, self._paths.table_version(key))
            return -1 if stat is None else int(stat.version)
        with self._guard:
            return self._versions.get(key, -1)

    def _bump(self, table: str) -> None:
        key = table_key(table)
        if self._client is not None and self._paths is not None:
            from kazoo.exceptions import NodeExistsError, NoNodeError

            path = self._paths.table_version(key)
            try:
                self._client.retry(self._client.set, path, b"")
            except NoNodeError:
                try:
                    self._client.retry(self._client.create, path, b"", makepath=True)
                except NodeExistsError:
                    self._client.retry(self._client.set, path, b"")
            return
        with self._guard:
            self._versions[key] = self._versions.get(key, -1) + 1

    @contextmanager
    def hold(self, tables: Iterable[str]) -> Iterator[None]:
        """Hold the locks of ``tables`` (fully qualified names) in one order, so that two
        writes into the same two tables never wait for each other."""
        with ExitStack() as held:
            names = sorted({t.lower() for t in tables})
            for table in names:
                lock = self._lock(table)
                started = time.monotonic()
                if not lock.acquire(timeout=self.wait):
                    raise Aborted(
                        f"another write into {table} has been running for over {self.wait:.0f} s; this write "
                        "did not start: try again"
                    )
                held.callback(lock.release)
                waited = time.monotonic() - started
                if waited > 1:
                    log.info("write into %s waited %.1f s for another write into it", table, waited)
            try:
                yield
            finally:
                for table in names:  # before the locks go: no reader sees the new data with the old version
                    self._bump(table)
