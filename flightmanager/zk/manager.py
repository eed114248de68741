"""The ZooKeeper-backed SparkFlightManager: every result spread over every live node.

The coordinator (the node a client asked) registers the query, gives the FlightInfo
one endpoint per live node, and runs the job; executors push each partition to a
node.  Which attempt of a partition counts is decided by a claim znode (the first
committed attempt anywhere wins).  When the job ends the coordinator writes each
node's manifest and the final state; every node watches the query's znode and ends
its streams accordingly.  Losing the coordinator, or a node holding part of the
result, fails the query on every node with the cause named.
"""

from __future__ import annotations

import heapq
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

import grpc
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError

from flightmanager import metrics
from flightmanager.claims import Claim, ClaimBook
from flightmanager.errors import FlightManagerError, NodeLost, QueryCancelled
from flightmanager.log_context import query_context
from flightmanager.manager import LocalFlightManager, Node, QueryRecord, SpoolSettings
from flightmanager.peers import Keepalive, PeerWatch
from flightmanager.query import QueryState
from flightmanager.status import QueryStatus, Served
from flightmanager.zk.credential import Credential
from flightmanager.zk.membership import Membership
from flightmanager.zk.paths import Paths
from flightmanager.zk.registry import QueryInfo, QueryRegistry

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def connect(connect_string: str, credential: Credential | None = None, timeout: float = 30.0) -> KazooClient:
    """A started kazoo client; ``host:port[,host:port][/chroot]`` (the chroot is created).

    With a credential, the client authenticates with it and everything it creates is
    readable and writable with that credential alone (see :mod:`flightmanager.zk.credential`)."""
    secured: dict[str, object] = {}
    if credential is not None:
        secured = {"auth_data": credential.auth_data, "default_acl": credential.acl}
    hosts, slash, chroot = connect_string.partition("/")
    if slash and chroot:
        bootstrap = KazooClient(hosts=hosts, timeout=10.0, **secured)  # type: ignore[arg-type]
        bootstrap.start(timeout=timeout)
        try:
            bootstrap.ensure_path("/" + chroot)
        finally:
            bootstrap.stop()
            bootstrap.close()
    client = KazooClient(hosts=connect_string, timeout=10.0, **secured)  # type: ignore[arg-type]
    client.start(timeout=timeout)
    return client


def cluster_secret(client: KazooClient, paths: Paths) -> bytes:
    """The secret every node shares (tokens, pushes): created by the first node."""
    client.ensure_path(paths.root) if paths.root != "/" else None
    try:
        client.create(paths.secret, secrets.token_hex(32).encode())
    except NodeExistsError:
        pass
    data, _ = client.get(paths.secret)
    return bytes.fromhex(data.decode())


class ZooKeeperFlightManager(LocalFlightManager):
    def __init__(
        self,
        spark: "SparkSession",
        node: Node,
        push_key: bytes,
        settings: SpoolSettings,
        client: KazooClient,
        paths: Paths,
        keepalive: Keepalive = Keepalive(),
    ) -> None:
        self.client = client
        self.paths = paths
        self.registry = QueryRegistry(client, paths)
        # what this node served is recorded off the streaming path, in order, one write at a time
        self._served_writer = ThreadPoolExecutor(1, thread_name_prefix="served-writer")
        super().__init__(spark, node, push_key, settings)
        # a node that dies or stops answering is suspected in seconds, not at session expiry
        self.peers = PeerWatch(node.node_id, keepalive, self._suspected)
        self.membership = Membership(client, paths, node, self._departed, self.peers.update).start()
        metrics.LIVE_NODES.labels(node.node_id).set_function(lambda: len(self.membership.live()))

    # -- hooks -----------------------------------------------------------------
    def _claim_book(self, local: bool) -> ClaimBook:
        # a result only this node holds needs no cluster-wide arbiter
        return super()._claim_book(local) if local else self.registry

    def _won(self, record: QueryRecord) -> dict[int, Claim]:
        return self.registry.won(record.query_id) if record.shared else super()._won(record)

    def _published(self, record: QueryRecord, *, local: bool) -> None:
        if local:
            return  # held by this node alone: nothing for the others to know
        # new work goes to nodes that are not draining (this one is not: it took the query)
        record.nodes = (self.node,) if record.single else tuple(self._targets_now())
        self.registry.create(
            QueryInfo(
                record.query_id, record.owner, self.node.node_id, QueryInfo.clip_sql(record.sql),
                QueryInfo.encode_schema(record.schema), record.ordered, record.created,
                record.expires_at, nodes=[n.node_id for n in record.nodes],
            )
        )
        record.shared = True
        self.registry.watch(record.query_id, lambda info: self._changed(record, info))

    def _finished(self, record: QueryRecord, manifests: dict[str, dict[int, int]]) -> None:
        for node_id, manifest in manifests.items():
            if node_id != self.node.node_id:
                self.registry.write_manifest(record.query_id, node_id, manifest)
        assert record.spool is not None
        record.spool.finish(manifests.get(self.node.node_id, {}))
        self.registry.update(
            record.query_id,
            lambda info: _with(
                info, state=QueryState.FINISHED.value, expires_at=max(info.expires_at, record.expires_at),
                finished=record.finished_at,
            ),
        )

    def _failed(self, record: QueryRecord, error: FlightManagerError) -> None:
        super()._failed(record, error)
        self._end_in_registry(record.query_id, error, record.finished_at or time.time())

    def _failed_unheld(self, query_id: str, error: FlightManagerError) -> None:
        self._end_in_registry(query_id, error, time.time())

    def _end_in_registry(self, query_id: str, error: FlightManagerError, finished: float) -> None:
        """Record the query's end for every node, unless it has ended already."""
        state = QueryState.CANCELLED if isinstance(error, QueryCancelled) else QueryState.FAILED
        self.registry.update(
            query_id,
            lambda info: None if QueryState(info.state).terminal
            else _with(info, state=state.value, error=error.message, error_code=error.code.name, finished=finished),
        )

    def _lookup(self, query_id: str) -> QueryRecord | None:
        """Another node coordinates this query: mirror it and hold its part here."""
        info = self.registry.get(query_id)
        if info is None:
            return None
        if info.nodes is not None and self.node.node_id not in info.nodes:
            return None  # no part of the result is here: "not found", never an empty result
        record = QueryRecord(
            query_id, info.owner, info.sql, info.arrow_schema(), info.ordered, info.created,
            info.expires_at, state=QueryState.RUNNING, coordinator=info.coordinator, shared=True,
        )
        adopted = self._adopt(record)
        if adopted is record:
            self.registry.watch(query_id, lambda changed: self._changed(record, changed))
        return adopted

    # -- reacting to other nodes -------------------------------------------------
    def _changed(self, record: QueryRecord, info: QueryInfo | None) -> bool:
        """A watch fired on the query's znode; returns False to stop watching."""
        with query_context(record.query_id):
            return self._apply(record, info)

    def _apply(self, record: QueryRecord, info: QueryInfo | None) -> bool:
        if info is None:
            self._expire(record, "expired")
            return False
        record.nodes = record.nodes or tuple(n for n in self.membership.live() if n.node_id in info.nodes)
        if info.expires_at > record.expires_at:
            self._extend(record, info.expires_at)
        state = QueryState(info.state)
        spool = record.spool
        if info.finished is not None and record.finished_at is None:
            record.finished_at = info.finished
        if state is QueryState.FINISHED and record.coordinator != self.node.node_id and spool is not None:
            record.state = QueryState.FINISHED
            spool.finish(self.registry.manifest(record.query_id, self.node.node_id) or {})
        elif state in (QueryState.FAILED, QueryState.CANCELLED):
            if record.coordinator == self.node.node_id and record.state is QueryState.RUNNING:
                self.spark.sparkContext.cancelJobGroup(record.query_id)
            error = _error(info)
            record.state, record.error = state, error
            if spool is not None:
                spool.fail(error)
            return False
        return True

    def _extend(self, record: QueryRecord, expires_at: float) -> None:
        with self._lock:
            record.expires_at = expires_at
            heapq.heappush(self._expiry, (expires_at, record.query_id))
            self._lock.notify_all()

    def renew(self, query_id: str, user: str) -> float:
        expires_at = super().renew(query_id, user)
        self.registry.update(query_id, lambda info: _with(info, expires_at=max(info.expires_at, expires_at)))
        return expires_at

    def _expire(self, record: QueryRecord, reason: str) -> None:
        super()._expire(record, reason)
        if record.coordinator == self.node.node_id and record.shared:
            with query_context(record.query_id):
                self.registry.delete(record.query_id)

    # -- status ------------------------------------------------------------------
    def _live_nodes(self) -> list[Node]:
        suspected = self.peers.suspected()
        return [n for n in self.membership.live() if n.node_id not in suspected]

    def _registry_status(self) -> list[QueryStatus]:
        return [
            QueryStatus(
                info.query_id, info.owner, info.sql, info.state, info.coordinator, info.created,
                info.finished, info.error, served,
            )
            for info, served in self.registry.snapshot().values()
        ]

    def _served(self, record: QueryRecord) -> None:
        if not record.shared or record.internal:
            return
        try:
            self._served_writer.submit(self._write_served, record)
        except RuntimeError:  # stopping: the record goes with the query anyway
            pass

    def _write_served(self, record: QueryRecord) -> None:
        with query_context(record.query_id):
            try:
                self.registry.write_served(record.query_id, self.node.node_id, Served.of(record.tallies))
            except Exception as exc:  # noqa: BLE001 - the status page misses a figure, no more
                log.warning("could not record what node %s served: %s", self.node.node_id, exc)

    def _targets_now(self) -> list[Node]:
        """Nodes that take new work: live, not draining, not suspected."""
        suspected = self.peers.suspected()
        return [n for n in self.membership.targets() if n.node_id not in suspected]

    def _suspected(self, node: Node) -> None:
        threading.Thread(
            target=self._departed, args=(node.node_id, f"stopped answering (host {node.host})"), daemon=True
        ).start()

    def _departed(self, node_id: str, how: str = "was lost") -> None:
        for record in list(self._records.values()):
            holds = node_id == record.coordinator or any(n.node_id == node_id for n in record.nodes)
            if not holds or record.state not in (QueryState.RUNNING, QueryState.FINISHED):
                continue
            with query_context(record.query_id):
                self._lost(record, node_id, how)

    def _lost(self, record: QueryRecord, node_id: str, how: str) -> None:
        cause = "coordinator" if node_id == record.coordinator else "node holding part of the result"
        error = NodeLost(f"query {record.query_id} failed: {cause} {node_id} {how}")
        log.warning("%s", error.message)
        self._fail_with(record, error)

    # -- draining ------------------------------------------------------------------
    def _is_draining(self, node_id: str) -> bool:
        return super()._is_draining(node_id) or self.membership.is_draining(node_id)

    def _drain_started(self) -> None:
        self.membership.drain()

    def _undelivered(self) -> set[str]:
        left = super()._undelivered()
        live = (QueryState.PENDING.value, QueryState.RUNNING.value, QueryState.FINISHED.value)
        for query_id, (info, _served) in self.registry.snapshot().items():
            # a query with a part here that no push or read has brought to this node yet
            if info.nodes and self.node.node_id in info.nodes and info.state in live and query_id not in self._records:
                left.add(query_id)
        return left

    def stop(self) -> None:
        self.membership.stop()
        self.peers.stop()
        self._served_writer.shutdown(wait=False, cancel_futures=True)
        super().stop()


def _with(info: QueryInfo, **changes: object) -> QueryInfo:
    return replace(info, **changes)  # type: ignore[arg-type]


def _error(info: QueryInfo) -> FlightManagerError:
    error: FlightManagerError
    if info.state == QueryState.CANCELLED.value:
        error = QueryCancelled(info.error or f"query {info.query_id} was cancelled")
    else:
        error = FlightManagerError(info.error or f"query {info.query_id} failed")
        if info.error_code and hasattr(grpc.StatusCode, info.error_code):
            error.code = getattr(grpc.StatusCode, info.error_code)
    return error

