"""Where a cluster keeps its queries: the registry every node reads and writes.

:class:`Registry` is what the manager needs of one: query records, the claims that
decide which push of each partition counts, the manifests made from them, and what
each node served.  :class:`flightmanager.zk.registry.QueryRegistry` keeps them in
ZooKeeper for a cluster; :class:`MemoryRegistry` keeps them in this process, for
results that one node holds alone (a command's output, the node's warm-up).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Protocol

import pyarrow as pa

from flightmanager.claims import Claim
from flightmanager.query import QueryState
from flightmanager.status import Served

#: SQL text kept in a record (a znode holds at most about 1 MB)
SQL_KEPT = 64 * 1024


@dataclass(frozen=True)
class QueryInfo:
    query_id: str
    owner: str
    coordinator: str
    sql: str
    schema: str  # base64 of the IPC schema
    ordered: bool
    created: float
    expires_at: float
    state: str = QueryState.RUNNING.value
    error: str | None = None
    error_code: str | None = None
    nodes: list[str] | None = None
    #: when the query finished, failed or was cancelled (seconds since the epoch)
    finished: float | None = None

    def arrow_schema(self) -> pa.Schema:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.schema)))

    @staticmethod
    def encode_schema(schema: pa.Schema) -> str:
        return base64.b64encode(schema.serialize().to_pybytes()).decode()

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> QueryInfo:
        # fields a newer node added are left out, so nodes of two versions can share a cluster
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(data).items() if k in known})

    @staticmethod
    def clip_sql(sql: str) -> str:
        return sql if len(sql) <= SQL_KEPT else sql[: SQL_KEPT - 1] + "\u2026"


class Registry(Protocol):
    """The query registry a manager works with (ZooKeeper for a cluster, memory for one node)."""

    def create(self, info: QueryInfo) -> None: ...

    def get(self, query_id: str) -> QueryInfo | None: ...

    def update(self, query_id: str, change: Callable[[QueryInfo], QueryInfo | None]) -> QueryInfo | None:
        """Compare-and-set: ``change`` returns the new record, or None to leave it alone."""

    def claim(self, query_id: str, claim: Claim) -> bool:
        """Record ``claim`` if its partition has no winner yet; True if ``claim`` is the winner."""

    def won(self, query_id: str) -> dict[int, Claim]: ...

    def write_manifest(self, query_id: str, node_id: str, manifest: dict[int, int]) -> None: ...

    def manifest(self, query_id: str, node_id: str) -> dict[int, int] | None: ...

    def write_served(self, query_id: str, node_id: str, served: Served) -> None: ...

    def snapshot(self, query_ids: list[str] | None = None) -> dict[str, tuple[QueryInfo, dict[str, Served]]]: ...

    def watch(self, query_id: str, callback: Callable[[QueryInfo | None], bool]) -> None:
        """Call ``callback`` with each new version of the record (None: deleted) until it returns False."""

    def delete(self, query_id: str) -> None: ...


class MemoryRegistry:
    """A registry in this process: for results that one node holds alone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._infos: dict[str, QueryInfo] = {}
        self._claims: dict[str, dict[int, Claim]] = {}
        self._manifests: dict[str, dict[str, dict[int, int]]] = {}
        self._served: dict[str, dict[str, Served]] = {}
        self._watches: dict[str, list[Callable[[QueryInfo | None], bool]]] = {}

    def create(self, info: QueryInfo) -> None:
        with self._lock:
            if info.query_id in self._infos:
                raise KeyError(f"query {info.query_id} is registered already")
            self._infos[info.query_id] = info
            self._claims[info.query_id] = {}
            self._manifests[info.query_id] = {}
            self._served[info.query_id] = {}

    def get(self, query_id: str) -> QueryInfo | None:
        with self._lock:
            return self._infos.get(query_id)

    def update(self, query_id: str, change: Callable[[QueryInfo], QueryInfo | None]) -> QueryInfo | None:
        with self._lock:
            current = self._infos.get(query_id)
            if current is None:
                return None
            new = change(current)
            if new is None:
                return current
            self._infos[query_id] = new
        self._notify(query_id, new)
        return new

    def claim(self, query_id: str, claim: Claim) -> bool:
        with self._lock:
            claims = self._claims.get(query_id)
            if claims is None:
                return False  # the query is gone (expired, closed)
            winner = claims.setdefault(claim.key, claim)
            return winner.push == claim.push

    def won(self, query_id: str) -> dict[int, Claim]:
        with self._lock:
            return dict(self._claims.get(query_id, {}))

    def write_manifest(self, query_id: str, node_id: str, manifest: dict[int, int]) -> None:
        with self._lock:
            if query_id in self._manifests:
                self._manifests[query_id][node_id] = dict(manifest)

    def manifest(self, query_id: str, node_id: str) -> dict[int, int] | None:
        with self._lock:
            found = self._manifests.get(query_id, {}).get(node_id)
            return None if found is None else dict(found)

    def write_served(self, query_id: str, node_id: str, served: Served) -> None:
        with self._lock:
            if query_id in self._served:
                self._served[query_id][node_id] = served

    def snapshot(self, query_ids: list[str] | None = None) -> dict[str, tuple[QueryInfo, dict[str, Served]]]:
        with self._lock:
            ids = list(self._infos) if query_ids is None else query_ids
            return {q: (self._infos[q], dict(self._served[q])) for q in ids if q in self._infos}

    def watch(self, query_id: str, callback: Callable[[QueryInfo | None], bool]) -> None:
        with self._lock:
            current = self._infos.get(query_id)
            if current is not None:
                self._watches.setdefault(query_id, []).append(callback)
        if current is None:
            callback(None)
        elif not callback(current):
            self._unwatch(query_id, callback)

    def delete(self, query_id: str) -> None:
        with self._lock:
            found = self._infos.pop(query_id, None)
            for table in (self._claims, self._manifests, self._served):
                table.pop(query_id, None)
        if found is not None:
            self._notify(query_id, None)

    def query_ids(self) -> list[str]:
        with self._lock:
            return list(self._infos)

    def _notify(self, query_id: str, info: QueryInfo | None) -> None:
        with self._lock:
            callbacks = list(self._watches.get(query_id, ()))
            if info is None:
                self._watches.pop(query_id, None)
        for callback in callbacks:  # outside the lock: a callback may read the registry
            if not callback(info) and info is not None:
                self._unwatch(query_id, callback)

    def _unwatch(self, query_id: str, callback: Callable[[QueryInfo | None], bool]) -> None:
        with self._lock:
            callbacks = self._watches.get(query_id, [])
            if callback in callbacks:
                callbacks.remove(callback)


def changed(info: QueryInfo, **changes: object) -> QueryInfo:
    """``info`` with some fields changed."""
    return replace(info, **changes)  # type: ignore[arg-type]
