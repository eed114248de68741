"""Client sessions' recorded state in ZooKeeper, shared by every node of a cluster.

One znode per session (``<root>/sessions/<key>``, see :mod:`flightmanager.zk.paths`): its
data is the :class:`~flightsql.server.sessions.SessionState`, its version tells a node
whether its copy is current, and its modification time is the session's last use.
"""

from __future__ import annotations

import contextlib
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from flightmanager.zk.paths import Paths
from flightsql.server.sessions import SessionState


class ZooKeeperSessionStore:
    def __init__(self, client: KazooClient, paths: Paths) -> None:
        self.client = client
        self.paths = paths
        client.ensure_path(paths.sessions)

    def version(self, key: str) -> int | None:
        stat = self.client.retry(self.client.exists, self.paths.session(key))
        return None if stat is None else int(stat.version)

    def load(self, key: str) -> tuple[SessionState, int] | None:
        try:
            data, stat = self.client.retry(self.client.get, self.paths.session(key))
        except NoNodeError:
            return None
        return SessionState.from_bytes(data), int(stat.version)

    def save(self, key: str, state: SessionState) -> int:
        path, data = self.paths.session(key), state.to_bytes()
        while True:
            try:
                return int(self.client.retry(self.client.set, path, data).version)
            except NoNodeError:
                try:
                    self.client.retry(self.client.create, path, data)
                    return 0
                except NodeExistsError:
                    continue  # another node recorded it meanwhile: replace that

    def touch(self, key: str) -> int | None:
        path = self.paths.session(key)
        try:
            data, _ = self.client.retry(self.client.get, path)
            return int(self.client.retry(self.client.set, path, data).version)
        except NoNodeError:
            return None

    def delete(self, key: str) -> None:
        with contextlib.suppress(NoNodeError):
            self.client.retry(self.client.delete, self.paths.session(key))

    def idle(self, seconds: float) -> list[str]:
        cutoff_ms = (time.time() - seconds) * 1000
        idle = []
        for key in self.client.retry(self.client.get_children, self.paths.sessions):
            stat = self.client.retry(self.client.exists, self.paths.session(key))
            if stat is not None and stat.mtime < cutoff_ms:
                idle.append(key)
        return idle
