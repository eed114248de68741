"""The query history in ZooKeeper: one sequential znode per query, oldest first.

``<root>/history/q-<sequence>`` holds a query's last status as JSON.  Sequence numbers
order the entries, so pruning (past the size, or older than the age, by the znode's
creation time) deletes from the front without reading the rest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from flightmanager.history import Retention
from flightmanager.status import QueryStatus
from flightmanager.zk.paths import Paths

log = logging.getLogger(__name__)


class ZooKeeperHistory:
    def __init__(self, client: KazooClient, paths: Paths, retention: Retention = Retention()) -> None:
        self.client = client
        self.paths = paths
        self.retention = retention
        client.ensure_path(paths.history)

    def _entries(self) -> list[str]:
        return sorted(self.client.retry(self.client.get_children, self.paths.history))

    def add(self, query: QueryStatus) -> None:
        data = json.dumps(query.to_record()).encode()
        self.client.retry(self.client.create, self.paths.history_entry("q-"), data, sequence=True)
        self.prune()

    def prune(self) -> None:
        entries = self._entries()
        excess = entries[:max(0, len(entries) - self.retention.size)]
        cutoff_ms = (time.time() - self.retention.age) * 1000
        for name in entries[len(excess):]:
            stat = self.client.retry(self.client.exists, self.paths.history_entry(name))
            if stat is None or stat.ctime >= cutoff_ms:
                break
            excess.append(name)
        for name in excess:
            with contextlib.suppress(NoNodeError):  # another node pruned it
                self.client.retry(self.client.delete, self.paths.history_entry(name))

    def recent(self, count: int) -> list[QueryStatus]:
        names = list(reversed(self._entries()))[:max(0, count)]
        reads = [self.client.get_async(self.paths.history_entry(name)) for name in names]
        cutoff_ms = (time.time() - self.retention.age) * 1000
        found = []
        for read in reads:
            try:
                data, stat = read.get(timeout=10)
            except NoNodeError:
                continue
            if stat.ctime < cutoff_ms:
                break
            try:
                found.append(QueryStatus.from_record(json.loads(data)))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("a history entry could not be read: %s", exc)
        return found
