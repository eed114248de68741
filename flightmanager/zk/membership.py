"""Cluster membership: each node is an ephemeral znode; everyone watches the set.

A node whose ZooKeeper session expires loses its znode; the session listener only
flags that, and a worker thread registers the node again once a new session is
connected.  Departures are reported to a callback (queries coordinated by a
departed node fail).

A node being drained also has an ephemeral znode under ``draining/``: it gets no new
work (no pushes, no endpoints) and leaves once what it holds has been read.  Its
departure is then a clean leave, not a loss: nothing it held is still needed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NoAuthError, NodeExistsError, NoNodeError

from flightmanager.members import Changed, Departed
from flightmanager.records import Node
from flightmanager.zk.paths import Paths

log = logging.getLogger(__name__)


def encode_node(node: Node) -> bytes:
    doc = {"node_id": node.node_id, "public_uri": node.public_uri, "internal_uri": node.internal_uri, "host": node.host}
    if node.status_uri:
        doc["status_uri"] = node.status_uri
    return json.dumps(doc).encode()


def decode_node(data: bytes) -> Node:
    doc = json.loads(data)
    return Node(doc["node_id"], doc["public_uri"], doc["internal_uri"], doc["host"], doc.get("status_uri"))


class Membership:
    def __init__(
        self,
        client: KazooClient,
        paths: Paths,
        node: Node,
    ) -> None:
        self.client = client
        self.paths = paths
        self.node = node
        self._on_departed: Departed = lambda node_id: None
        #: the live set changed (the peer watch follows it)
        self._on_changed: Changed = lambda nodes: None
        self._live: dict[str, Node] = {}
        #: nodes seen draining (kept until they leave: their two znodes vanish in either order)
        self._draining: set[str] = set()
        self._drain_requested = False
        self._lock = threading.Lock()
        self._lost = threading.Event()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._rejoin = threading.Thread(target=self._rejoin_loop, name="zk-rejoin", daemon=True)
        #: the latest member list a watch delivered, read by the members thread (watches never block)
        self._seen: list[str] | None = None
        self._seen_changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_loop, name="zk-members", daemon=True)

    def start(
        self, on_departed: Departed = lambda node_id: None, on_changed: Changed = lambda nodes: None
    ) -> Membership:
        self._on_departed, self._on_changed = on_departed, on_changed
        self._reader.start()
        self.client.add_listener(self._state)
        self.client.ensure_path(self.paths.nodes)
        self.client.ensure_path(self.paths.draining)
        self._register()
        self.client.ChildrenWatch(self.paths.draining, self._draining_changed)
        self.client.ChildrenWatch(self.paths.nodes, self._children)
        self._rejoin.start()
        return self

    def _register(self) -> None:
        path = self.paths.node(self.node.node_id)
        try:
            self.client.retry(self.client.create, path, encode_node(self.node), ephemeral=True)
        except NodeExistsError:
            # our own znode from a session that is not expired yet: replace it
            self.client.retry(self.client.delete, path)
            self.client.retry(self.client.create, path, encode_node(self.node), ephemeral=True)
        log.info("registered node %s in ZooKeeper", self.node.node_id)

    def _state(self, state: str) -> None:
        # listeners only set flags; the work happens on the rejoin thread
        if state == KazooState.LOST:
            self._lost.set()
        elif state == KazooState.CONNECTED and self._lost.is_set():
            self._lost.clear()
            self._wake.set()

    def _rejoin_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._register()
                if self._drain_requested:
                    self.drain()
                self.client.ChildrenWatch(self.paths.nodes, self._children)
            except Exception:
                log.exception("re-registering node %s failed", self.node.node_id)

    def _children(self, children: list[str]) -> bool:
        # kazoo's callback thread: hand the list over, read the members on our own thread
        with self._seen_changed:
            self._seen = list(children)
            self._seen_changed.notify_all()
        return not self._stopping.is_set()

    def _read_loop(self) -> None:
        while True:
            with self._seen_changed:
                while self._seen is None and not self._stopping.is_set():
                    self._seen_changed.wait()
                if self._stopping.is_set():
                    return
                children, self._seen = self._seen, None
            assert children is not None
            try:
                self._read(children)
            except Exception:
                log.exception("reading the cluster's members failed")

    def _read(self, children: list[str]) -> None:
        fresh: dict[str, Node] = {}
        for node_id in children:
            try:
                data, _ = self.client.get(self.paths.node(node_id))
                fresh[node_id] = decode_node(data)
            except NoNodeError:
                continue
            except (NoAuthError, ValueError, KeyError, TypeError) as exc:
                # not a node of this cluster (the ACL keeps others out; this is the second line)
                log.warning("ignoring member znode %s: %s", node_id, type(exc).__name__)
                continue
        with self._lock:
            departed = set(self._live) - set(fresh)
            self._live = fresh
            drained = departed & self._draining
            self._draining -= departed
        self._on_changed(list(fresh.values()))
        for node_id in departed:
            if node_id in drained:
                log.info("node %s left the cluster after draining", node_id)
                continue
            log.warning("node %s left the cluster", node_id)
            self._on_departed(node_id)

    def _draining_changed(self, children: list[str]) -> bool:
        with self._lock:
            started = set(children) - self._draining
            self._draining |= set(children)
        for node_id in started:
            log.info("node %s is draining: it gets no new work", node_id)
        return not self._stopping.is_set()

    def drain(self) -> None:
        """Mark this node as draining: from now on it gets no new work."""
        self._drain_requested = True
        with contextlib.suppress(NodeExistsError):
            self.client.retry(self.client.create, self.paths.draining_node(self.node.node_id), b"", ephemeral=True)

    def targets(self) -> list[Node]:
        """The live nodes that take new work (not draining)."""
        with self._lock:
            draining = set(self._draining)
        return [node for node in self.live() if node.node_id not in draining]

    def is_draining(self, node_id: str) -> bool:
        with self._lock:
            return node_id in self._draining

    def live(self) -> list[Node]:
        with self._lock:
            nodes = list(self._live.values())
        if not any(n.node_id == self.node.node_id for n in nodes):
            nodes.append(self.node)
        return sorted(nodes, key=lambda n: n.node_id)

    def is_live(self, node_id: str) -> bool:
        with self._lock:
            return node_id in self._live

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        with self._seen_changed:
            self._seen_changed.notify_all()
        with contextlib.suppress(Exception):  # the session's end removes it anyway
            self.client.delete(self.paths.node(self.node.node_id))
