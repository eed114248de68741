"""Failure detection by the nodes' own channels: a peer that dies is suspected at once,
a quiet peer is not, and a peer that comes back is trusted again."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Iterator

import pytest

from flightmanager.peers import PeerWatch
from flightmanager.records import Node
from flightmanager.zk.embedded import free_port

SERVER = """
import sys, threading
from flightmanager.flight.service import bind_server
server, port = bind_server("127.0.0.1", int(sys.argv[1]))
server.start()
print("up", flush=True)
threading.Event().wait()
"""


def internal_server(port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "up"
    return process


class Seen:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.suspected: list[str] = []

    def __call__(self, node: Node) -> None:
        with self.cond:
            self.suspected.append(node.node_id)
            self.cond.notify_all()

    def wait(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.suspected) >= count, timeout)


@pytest.fixture
def watch() -> Iterator[tuple[PeerWatch, Seen]]:
    seen = Seen()
    peers = PeerWatch("me", on_suspected=seen)
    yield peers, seen
    peers.stop()


def wait_for(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not done.is_set():
            if condition():
                return True
            done.wait(0.05)
        return bool(condition())
    finally:
        deadline.cancel()


def test_a_killed_peer_is_suspected_at_once_and_trusted_again_when_back(watch: tuple[PeerWatch, Seen]) -> None:
    peers, seen = watch
    port = free_port()
    process = internal_server(port)
    node = Node("b:1", "grpc://b:1", f"grpc://127.0.0.1:{port}", "host-b")
    peers.update([node, Node("me", "grpc://a:1", "grpc://127.0.0.1:1", "host-a")])
    try:
        # quiet for longer than several keepalive rounds: pings are answered, no suspicion
        assert not seen.wait(1, timeout=4)
        assert peers.suspected() == set()
        process.kill()
        process.wait()
        assert seen.wait(1, timeout=2), "a killed peer's closed connection is noticed at once"
        assert seen.suspected == ["b:1"] and peers.is_suspected("b:1")
        process = internal_server(port)
        assert wait_for(lambda: not peers.is_suspected("b:1"), timeout=10)
    finally:
        process.kill()
        process.wait()


def test_a_peer_that_never_answers_is_suspected_and_departed_peers_are_forgotten(
    watch: tuple[PeerWatch, Seen],
) -> None:
    peers, seen = watch
    nobody = Node("c:1", "grpc://c:1", f"grpc://127.0.0.1:{free_port()}", "host-c")
    peers.update([nobody])
    assert seen.wait(1, timeout=5)
    assert peers.is_suspected("c:1")
    peers.update([])
    assert peers.suspected() == set()
