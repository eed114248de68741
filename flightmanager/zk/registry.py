"""The query registry in ZooKeeper: query records, partition claims, manifests, and
what each node served of each query."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, NotEmptyError, RolledBackError

from flightmanager.claims import Claim
from flightmanager.registry import QueryInfo
from flightmanager.status import Served
from flightmanager.zk.paths import Paths

log = logging.getLogger(__name__)


class QueryRegistry:
    """The query registry of a cluster, in ZooKeeper (see :class:`flightmanager.registry.Registry`)."""

    def __init__(self, client: KazooClient, paths: Paths) -> None:
        self.client = client
        self.paths = paths
        client.ensure_path(paths.queries)

    def create(self, info: QueryInfo) -> None:
        """The record and its folders, in one transaction (one round trip)."""
        query_id = info.query_id

        def commit() -> list[Any]:
            transaction = self.client.transaction()
            transaction.create(self.paths.query(query_id), info.to_bytes())
            for folder in (self.paths.claims(query_id), self.paths.manifests(query_id), self.paths.served(query_id)):
                transaction.create(folder, b"")
            return list(transaction.commit())

        errors = [r for r in self.client.retry(commit) if isinstance(r, Exception)]
        if errors:  # the operation that failed, not the ones rolled back with it
            raise next((e for e in errors if not isinstance(e, RolledBackError)), errors[0])

    def get(self, query_id: str) -> QueryInfo | None:
        try:
            data, _ = self.client.retry(self.client.get, self.paths.query(query_id))
        except NoNodeError:
            return None
        return QueryInfo.from_bytes(data)

    def update(self, query_id: str, change: Callable[[QueryInfo], QueryInfo | None]) -> QueryInfo | None:
        """Compare-and-set update; ``change`` returns None to leave the record alone."""
        path = self.paths.query(query_id)
        while True:
            try:
                data, stat = self.client.retry(self.client.get, path)
            except NoNodeError:
                return None
            current = QueryInfo.from_bytes(data)
            new = change(current)
            if new is None:
                return current
            try:
                self.client.retry(self.client.set, path, new.to_bytes(), version=stat.version)
                return new
            except BadVersionError:  # someone else wrote first: read again
                continue

    def claim(self, query_id: str, claim: Claim) -> bool:
        """The first committed push of a piece wins, across all nodes.

        The create may be retried by the client after a lost reply, and then find the
        znode its first try made: the push id in it says whether the win is ours."""
        path = self.paths.claim(query_id, claim.key)
        try:
            self.client.retry(self.client.create, path, json.dumps(claim.to_dict()).encode())
            return True
        except NodeExistsError:
            pass
        except NoNodeError:
            return False  # the query is gone (expired, closed)
        try:
            data, _ = self.client.retry(self.client.get, path)
        except NoNodeError:
            return False
        return Claim.from_dict(claim.key, json.loads(data)).push == claim.push

    def won(self, query_id: str) -> dict[int, Claim]:
        """Every piece's winning claim (by piece key), read with pipelined requests."""
        try:
            children = self.client.retry(self.client.get_children, self.paths.claims(query_id))
        except NoNodeError:
            return {}
        reads = {int(c): self.client.get_async(self.paths.claim(query_id, int(c))) for c in children if c.isdigit()}
        return {p: Claim.from_dict(p, json.loads(read.get(timeout=30)[0])) for p, read in reads.items()}

    def write_manifest(self, query_id: str, node_id: str, manifest: dict[int, int]) -> None:
        data = json.dumps({str(k): v for k, v in manifest.items()}).encode()
        self.client.retry(self.client.create, self.paths.manifest(query_id, node_id), data, makepath=True)

    def manifest(self, query_id: str, node_id: str) -> dict[int, int] | None:
        try:
            data, _ = self.client.retry(self.client.get, self.paths.manifest(query_id, node_id))
        except NoNodeError:
            return None
        return {int(k): int(v) for k, v in json.loads(data).items()}

    def write_served(self, query_id: str, node_id: str, served: Served) -> None:
        """Record what ``node_id`` has served of the query so far (nothing if it is gone)."""
        path = self.paths.served_by(query_id, node_id)
        data = json.dumps(served.to_dict()).encode()
        try:
            self.client.retry(self.client.set, path, data)
            return
        except NoNodeError:
            pass
        try:
            self.client.retry(self.client.create, path, data)
        except NodeExistsError:
            self.client.retry(self.client.set, path, data)
        except NoNodeError:
            pass  # the query's record was deleted (expired, closed)

    def served(self, query_id: str) -> dict[str, Served]:
        """What each node has recorded as served of the query."""
        found = self.snapshot([query_id]).get(query_id)
        return {} if found is None else found[1]

    def snapshot(self, query_ids: list[str] | None = None) -> dict[str, tuple[QueryInfo, dict[str, Served]]]:
        """Every query's record and served figures, read with pipelined requests.

        A query deleted while it is read is left out."""
        ids = self.query_ids() if query_ids is None else query_ids
        records = {q: self.client.get_async(self.paths.query(q)) for q in ids}
        children = {q: self.client.get_children_async(self.paths.served(q)) for q in ids}
        served_reads: dict[str, dict[str, Any]] = {}
        for query_id, pending in children.items():
            try:
                nodes = pending.get(timeout=10)
            except NoNodeError:
                continue
            served_reads[query_id] = {
                n: self.client.get_async(self.paths.served_by(query_id, n)) for n in nodes
            }
        result: dict[str, tuple[QueryInfo, dict[str, Served]]] = {}
        for query_id, pending in records.items():
            try:
                data, _ = pending.get(timeout=10)
            except NoNodeError:
                continue
            if not data:
                continue
            info = QueryInfo.from_bytes(data)
            served: dict[str, Served] = {}
            for node_id, read in served_reads.get(query_id, {}).items():
                try:
                    served[node_id] = Served.from_dict(json.loads(read.get(timeout=10)[0]))
                except (NoNodeError, ValueError):
                    continue
            result[query_id] = (info, served)
        return result

    def watch(self, query_id: str, callback: Callable[[QueryInfo | None], bool]) -> None:
        """Call ``callback`` with each new version of the record (None: deleted)."""

        def on_change(data: bytes | None, stat: object) -> bool:
            return callback(None if data is None else QueryInfo.from_bytes(data))

        self.client.DataWatch(self.paths.query(query_id), on_change)

    def delete(self, query_id: str) -> None:
        """Delete the record and everything under it."""
        for _ in range(5):
            try:
                self.client.retry(self.client.delete, self.paths.query(query_id), recursive=True)
                return
            except NoNodeError:
                return
            except NotEmptyError:
                continue  # a node wrote a child (a served figure) meanwhile: delete again
        log.warning("could not delete the record of query %s: it keeps getting children", query_id)

    def query_ids(self) -> list[str]:
        try:
            return list(self.client.get_children(self.paths.queries))
        except NoNodeError:
            return []
