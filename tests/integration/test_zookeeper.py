"""Coordination recipes against a real ZooKeeper (PySpark's jars): claims, manifests,
membership across session expiry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest
from kazoo.client import KazooClient

from flightmanager.manager import Node
from flightmanager.zk.embedded import EmbeddedZooKeeper
from flightmanager.zk.manager import cluster_secret, connect
from flightmanager.zk.membership import Membership
from flightmanager.zk.paths import Paths
from flightmanager.zk.registry import QueryInfo, QueryRegistry
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedZooKeeper]:
    server = EmbeddedZooKeeper(tmp_path_factory.mktemp("zk")).start()
    yield server
    server.stop()


@pytest.fixture()
def client(zookeeper: EmbeddedZooKeeper, request: pytest.FixtureRequest) -> Iterator[KazooClient]:
    chroot = f"{zookeeper.connect_string}/{request.node.name.replace('[', '_').replace(']', '_')}"
    kazoo = connect(chroot)
    yield kazoo
    kazoo.stop()
    kazoo.close()


def _info(query_id: str = "q" * 32) -> QueryInfo:
    import pyarrow as pa

    return QueryInfo(query_id, "alice", "node-a", "SELECT 1", QueryInfo.encode_schema(pa.schema([("x", pa.int64())])),
                     False, time.time(), time.time() + 60, nodes=["node-a", "node-b"])


def test_first_attempt_of_a_partition_wins_across_nodes(client: KazooClient) -> None:
    registry = QueryRegistry(client, Paths())
    registry.create(_info())
    assert registry.claim("q" * 32, 3, "node-b", 1) is True
    assert registry.claim("q" * 32, 3, "node-a", 0) is False  # a retry on another node is dropped
    assert registry.claim("q" * 32, 3, "node-b", 2) is False
    assert registry.claim("q" * 32, 4, "node-a", 0) is True


def test_claims_for_a_vanished_query_are_refused(client: KazooClient) -> None:
    registry = QueryRegistry(client, Paths())
    assert registry.claim("z" * 32, 0, "node-a", 0) is False


def test_manifests_and_state_round_trip(client: KazooClient) -> None:
    registry = QueryRegistry(client, Paths())
    registry.create(_info())
    registry.write_manifest("q" * 32, "node-b", {0: 10, 2: 7})
    assert registry.manifest("q" * 32, "node-b") == {0: 10, 2: 7}
    assert registry.manifest("q" * 32, "node-a") is None
    seen: list[str | None] = []
    registry.watch("q" * 32, lambda info: seen.append(None if info is None else info.state) or True)
    from dataclasses import replace

    registry.update("q" * 32, lambda info: replace(info, state="FINISHED"))
    wait_until(lambda: "FINISHED" in seen, what="the watch to see FINISHED")
    registry.delete("q" * 32)
    wait_until(lambda: seen[-1] is None, what="the watch to see the deletion")
    assert registry.get("q" * 32) is None


def test_every_node_gets_the_same_secret(zookeeper: EmbeddedZooKeeper, client: KazooClient) -> None:
    other = KazooClient(hosts=zookeeper.connect_string + "/" + client.chroot.strip("/"))
    other.start(10)
    try:
        assert cluster_secret(client, Paths()) == cluster_secret(other, Paths())
        assert len(cluster_secret(client, Paths())) == 32
    finally:
        other.stop()
        other.close()


def test_member_re_registers_after_its_session_expires(zookeeper: EmbeddedZooKeeper, client: KazooClient) -> None:
    paths = Paths()
    node = Node("node-x", "grpc://127.0.0.1:1", "grpc://127.0.0.1:2", "host")
    departed: list[str] = []
    watcher = Membership(client, paths, node).start()
    observer_client = KazooClient(hosts=zookeeper.connect_string + client.chroot)
    observer_client.start(10)
    observer = Membership(observer_client, paths, Node("node-y", "u", "i", "h"), departed.append).start()
    try:
        wait_until(lambda: observer.is_live("node-x"), what="node-x to be seen")
        # Expire node-x's session the way ZooKeeper does: another connection with the
        # same session id closes it.
        session_id, password = client.client_id
        killer = KazooClient(hosts=zookeeper.connect_string, timeout=10)
        killer._session_id, killer._session_passwd = session_id, password  # kazoo's own test technique
        killer.start(10)
        killer.stop()
        killer.close()
        wait_until(lambda: "node-x" in departed, timeout=60, what="the departure to be reported")
        wait_until(lambda: observer.is_live("node-x"), timeout=60, what="node-x to register again")
    finally:
        watcher.stop()
        observer.stop()
        observer_client.stop()
        observer_client.close()
