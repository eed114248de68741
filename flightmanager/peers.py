"""Failure detection in seconds: every node keeps a channel to every other node's
internal server and watches its connectivity.

ZooKeeper notices a lost node only when its session expires (10 s or more). A
node's own channels notice sooner:

- a node that dies (SIGKILL, a crash) closes its connections: the kernel resets them
  and the channel leaves READY at once;
- a host that stops answering (cut off, frozen) misses keepalive pings: the channel
  leaves READY within ``ping_interval + ping_timeout``.

A peer whose channel leaves READY is *suspected*: it gets no new work and no
endpoint, and the queries that need it fail with UNAVAILABLE naming it. It is
trusted again when its channel is READY again. Callbacks of gRPC's connectivity
watch only record the change and hand it to a worker thread; they never block.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc

from flightmanager.records import Node
from flightmanager.tls import TlsFiles, channel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Keepalive:
    """How often a peer is pinged, and how long an unanswered ping may take."""

    ping_interval: float = 1.0
    ping_timeout: float = 3.0

    def client_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.keepalive_time_ms", int(self.ping_interval * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.ping_timeout * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            # a watched channel never goes idle on its own (that would look like a loss)
            ("grpc.client_idle_timeout_ms", 2**31 - 1),
            # reconnect quickly once a peer is back
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]


def server_keepalive_options(keepalive: Keepalive = Keepalive()) -> list[tuple[str, int]]:
    """What a server must allow for its peers' pings (else it answers them with GOAWAY,
    which a peer would take for a loss)."""
    interval = int(keepalive.ping_interval * 1000)
    return [
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", max(100, interval // 2)),
        ("grpc.http2.max_ping_strikes", 0),
        # the server pings its clients too: a pusher on a cut-off host is noticed
        ("grpc.keepalive_time_ms", interval * 2),
        ("grpc.keepalive_timeout_ms", int(keepalive.ping_timeout * 1000)),
    ]


def _ignore(state: grpc.ChannelConnectivity) -> None:
    pass


class _Peer:
    def __init__(self, node: Node, keepalive: Keepalive, changed: Callable[[_Peer, grpc.ChannelConnectivity], None],
                 tls: TlsFiles | None = None) -> None:
        self.node = node
        self.closed = False
        self.ever_ready = False
        self.state: grpc.ChannelConnectivity | None = None
        self.channel = channel(node.internal_uri, tls, keepalive.client_options())
        self._changed = changed
        self.channel.subscribe(self._on_state, try_to_connect=True)

    def _on_state(self, state: grpc.ChannelConnectivity) -> None:  # gRPC's thread: record, never block
        self._changed(self, state)

    def reconnect(self, delay: float) -> None:
        """Ask the channel to connect again after ``delay`` (a channel that failed stays
        idle until asked)."""
        timer = threading.Timer(delay, self._nudge)
        timer.daemon = True
        timer.start()

    def _nudge(self) -> None:
        if self.closed:
            return
        try:
            self.channel.subscribe(_ignore, try_to_connect=True)
            self.channel.unsubscribe(_ignore)
        except ValueError:  # closed meanwhile
            pass

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(ValueError):
            self.channel.unsubscribe(self._on_state)
        self.channel.close()


class PeerWatch:
    """Watches the internal servers of the other live nodes; reports suspicion and recovery."""

    def __init__(
        self,
        me: str,
        keepalive: Keepalive = Keepalive(),
        on_suspected: Callable[[Node], None] = lambda node: None,
        tls: TlsFiles | None = None,
    ) -> None:
        self._me = me
        self._tls = tls
        self._keepalive = keepalive
        self._on_suspected = on_suspected
        self._lock = threading.Lock()
        self._peers: dict[str, _Peer] = {}
        self._suspected: dict[str, Node] = {}
        self._events: queue.SimpleQueue[tuple[_Peer, grpc.ChannelConnectivity] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._work, name="peer-watch", daemon=True)
        self._worker.start()

    def update(self, nodes: Iterable[Node]) -> None:
        """The live set changed (from ZooKeeper): watch new peers, forget departed ones."""
        fresh = {n.node_id: n for n in nodes if n.node_id != self._me}
        with self._lock:
            gone = [p for node_id, p in self._peers.items() if fresh.get(node_id) != p.node]
            for peer in gone:
                del self._peers[peer.node.node_id]
                self._suspected.pop(peer.node.node_id, None)
            added = [n for node_id, n in fresh.items() if node_id not in self._peers]
        for peer in gone:
            peer.close()
        for node in added:
            peer = _Peer(node, self._keepalive, self._changed, self._tls)
            with self._lock:
                self._peers[node.node_id] = peer

    def _changed(self, peer: _Peer, state: grpc.ChannelConnectivity) -> None:
        self._events.put((peer, state))

    def _work(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            peer, state = event
            try:
                self._apply(peer, state)
            except Exception:
                log.exception("peer watch: handling %s of %s failed", state, peer.node.node_id)

    def _apply(self, peer: _Peer, state: grpc.ChannelConnectivity) -> None:
        node_id = peer.node.node_id
        with self._lock:
            if self._peers.get(node_id) is not peer:
                return  # a peer since forgotten
            was, peer.state = peer.state, state
            if state is grpc.ChannelConnectivity.READY:
                peer.ever_ready = True
                recovered = self._suspected.pop(node_id, None) is not None
                suspected = False
            else:
                # leaving READY is a loss; a peer never reached is suspected once it fails
                lost = was is grpc.ChannelConnectivity.READY or state is grpc.ChannelConnectivity.TRANSIENT_FAILURE
                suspected = lost and node_id not in self._suspected and state is not grpc.ChannelConnectivity.SHUTDOWN
                if suspected:
                    self._suspected[node_id] = peer.node
                recovered = False
                if state in (grpc.ChannelConnectivity.IDLE, grpc.ChannelConnectivity.TRANSIENT_FAILURE):
                    peer.reconnect(self._keepalive.ping_interval / 2)
        if recovered:
            log.info("node %s (host %s) answers again", node_id, peer.node.host)
        if suspected:
            log.warning("node %s (host %s) stopped answering (%s): no new work goes to it",
                        node_id, peer.node.host, state.name if state else "?")
            self._on_suspected(peer.node)

    def suspected(self) -> set[str]:
        with self._lock:
            return set(self._suspected)

    def is_suspected(self, node_id: str) -> bool:
        with self._lock:
            return node_id in self._suspected

    def stop(self) -> None:
        with self._lock:
            peers, self._peers = list(self._peers.values()), {}
        for peer in peers:
            peer.close()
        self._events.put(None)
