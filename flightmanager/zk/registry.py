"""The query registry in ZooKeeper: query records, partition claims, manifests."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from typing import Callable

import pyarrow as pa
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from flightmanager.query import QueryState
from flightmanager.zk.paths import Paths


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

    def arrow_schema(self) -> pa.Schema:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.schema)))

    @staticmethod
    def encode_schema(schema: pa.Schema) -> str:
        return base64.b64encode(schema.serialize().to_pybytes()).decode()

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "QueryInfo":
        return cls(**json.loads(data))


class QueryRegistry:
    def __init__(self, client: KazooClient, paths: Paths) -> None:
        self.client = client
        self.paths = paths
        client.ensure_path(paths.queries)

    def create(self, info: QueryInfo) -> None:
        self.client.retry(self.client.create, self.paths.query(info.query_id), info.to_bytes(), makepath=True)
        self.client.retry(self.client.ensure_path, self.paths.claims(info.query_id))
        self.client.retry(self.client.ensure_path, self.paths.manifests(info.query_id))

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
            new = change(QueryInfo.from_bytes(data))
            if new is None:
                return QueryInfo.from_bytes(data)
            try:
                self.client.retry(self.client.set, path, new.to_bytes(), version=stat.version)
                return new
            except Exception as exc:  # BadVersionError: someone else wrote first; read again
                if type(exc).__name__ != "BadVersionError":
                    raise

    def claim(self, query_id: str, partition: int, node_id: str, attempt: int) -> bool:
        """First committed attempt of a partition wins, across all nodes."""
        try:
            self.client.retry(
                self.client.create,
                self.paths.claim(query_id, partition),
                json.dumps({"node": node_id, "attempt": attempt}).encode(),
            )
            return True
        except NodeExistsError:
            return False
        except NoNodeError:
            return False  # the query is gone (expired, closed)

    def write_manifest(self, query_id: str, node_id: str, manifest: dict[int, int]) -> None:
        data = json.dumps({str(k): v for k, v in manifest.items()}).encode()
        self.client.retry(self.client.create, self.paths.manifest(query_id, node_id), data, makepath=True)

    def manifest(self, query_id: str, node_id: str) -> dict[int, int] | None:
        try:
            data, _ = self.client.retry(self.client.get, self.paths.manifest(query_id, node_id))
        except NoNodeError:
            return None
        return {int(k): int(v) for k, v in json.loads(data).items()}

    def watch(self, query_id: str, callback: Callable[[QueryInfo | None], bool]) -> None:
        """Call ``callback`` with each new version of the record (None: deleted)."""

        def on_change(data: bytes | None, stat: object) -> bool:
            return callback(None if data is None else QueryInfo.from_bytes(data))

        self.client.DataWatch(self.paths.query(query_id), on_change)

    def delete(self, query_id: str) -> None:
        try:
            self.client.retry(self.client.delete, self.paths.query(query_id), recursive=True)
        except NoNodeError:
            pass

    def query_ids(self) -> list[str]:
        try:
            return list(self.client.get_children(self.paths.queries))
        except NoNodeError:
            return []
