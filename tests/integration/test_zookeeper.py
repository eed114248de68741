"""Coordination recipes against a real ZooKeeper (PySpark's jars): claims, manifests,
membership across session expiry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest
from kazoo.client import KazooClient

from flightmanager.records import Node
from flightmanager.zk.manager import cluster_secret
from flightmanager.zk.membership import Membership
from flightmanager.claims import Claim
from flightmanager.zk.paths import Paths
from flightmanager.zk.registry import QueryInfo, QueryRegistry
from tests.integration.conftest import wait_until
from tests.integration.zookeeper import ZooKeeperServer, zookeeper  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


@pytest.fixture()
def client(zookeeper: ZooKeeperServer, request: pytest.FixtureRequest) -> Iterator[KazooClient]:
    kazoo = zookeeper.client(f"/{request.node.name.replace('[', '_').replace(']', '_')}")
    yield kazoo
    kazoo.stop()
    kazoo.close()


def _info(query_id: str = "q" * 32) -> QueryInfo:
    import pyarrow as pa

    return QueryInfo(query_id, "alice", "node-a", "SELECT 1", QueryInfo.encode_schema(pa.schema([("x", pa.int64())])),
                     False, time.time(), time.time() + 60, nodes=["node-a", "node-b"])


def _claim(partition: int, node: str, attempt: int, rows: int = 5, push: str | None = None) -> Claim:
    return Claim(partition, node, attempt, rows, push or f"{node}-{partition}-{attempt}")


def test_first_attempt_of_a_partition_wins_across_nodes(client: KazooClient) -> None:
    registry = QueryRegistry(client, Paths())
    registry.create(_info())
    assert registry.claim("q" * 32, _claim(3, "node-b", 1, rows=7)) is True
    assert registry.claim("q" * 32, _claim(3, "node-a", 0)) is False  # a retry on another node is dropped
    assert registry.claim("q" * 32, _claim(3, "node-b", 2)) is False
    assert registry.claim("q" * 32, _claim(4, "node-a", 0, rows=0)) is True
    assert registry.won("q" * 32) == {3: _claim(3, "node-b", 1, rows=7), 4: _claim(4, "node-a", 0, rows=0)}


def test_a_claim_retried_after_a_lost_reply_recognises_its_own_win(client: KazooClient) -> None:
    """The client may send a create again after a lost reply: the znode its first try
    made is its own win (same push), not another attempt's."""
    registry = QueryRegistry(client, Paths())
    registry.create(_info())
    mine = _claim(0, "node-a", 0, push="push-1")
    assert registry.claim("q" * 32, mine) is True
    assert registry.claim("q" * 32, mine) is True
    # the same node and attempt number, but another push (a re-run stage): dropped
    assert registry.claim("q" * 32, _claim(0, "node-a", 0, push="push-2")) is False


def test_claims_for_a_vanished_query_are_refused(client: KazooClient) -> None:
    registry = QueryRegistry(client, Paths())
    assert registry.claim("z" * 32, _claim(0, "node-a", 0)) is False
    assert registry.won("z" * 32) == {}


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


def test_served_figures_are_kept_per_node_and_go_with_the_query(client: KazooClient) -> None:
    from flightmanager.status import Served

    registry = QueryRegistry(client, Paths())
    registry.create(_info())
    registry.write_served("q" * 32, "node-a", Served(10, 100, 1))
    registry.write_served("q" * 32, "node-a", Served(25, 250, 2))  # a later stream: the new total
    registry.write_served("q" * 32, "node-b", Served(7, 70, 1))
    assert registry.served("q" * 32) == {"node-a": Served(25, 250, 2), "node-b": Served(7, 70, 1)}
    registry.create(_info("r" * 32))
    snapshot = registry.snapshot()
    assert set(snapshot) == {"q" * 32, "r" * 32}
    info, served = snapshot["q" * 32]
    assert (info.sql, info.owner, info.state) == ("SELECT 1", "alice", "RUNNING")
    assert served["node-b"] == Served(7, 70, 1) and snapshot["r" * 32][1] == {}
    registry.delete("q" * 32)
    registry.write_served("q" * 32, "node-a", Served(30, 300, 3))  # a stream ending after expiry
    assert not client.exists(Paths().query("q" * 32))  # leaves no orphan behind
    assert set(registry.snapshot()) == {"r" * 32}


def test_a_query_is_registered_once(client: KazooClient) -> None:
    from kazoo.exceptions import NodeExistsError

    registry = QueryRegistry(client, Paths())
    registry.create(_info())
    with pytest.raises(NodeExistsError):
        registry.create(_info())
    assert sorted(client.get_children(Paths().query("q" * 32))) == ["claims", "manifests", "served"]


def test_records_from_a_newer_node_are_read(client: KazooClient) -> None:
    import json

    data = json.loads(_info().to_bytes())
    data["a_field_from_the_future"] = 1
    info = QueryInfo.from_bytes(json.dumps(data).encode())
    assert info.query_id == "q" * 32 and info.finished is None
    assert QueryInfo.clip_sql("x" * 10) == "x" * 10
    assert len(QueryInfo.clip_sql("x" * 100_000).encode()) < 70_000


def test_every_node_gets_the_same_secret(zookeeper: ZooKeeperServer, client: KazooClient) -> None:
    other = zookeeper.client(client.chroot)
    try:
        assert cluster_secret(client, Paths()) == cluster_secret(other, Paths())
        assert len(cluster_secret(client, Paths())) == 32
    finally:
        other.stop()
        other.close()


def test_member_re_registers_after_its_session_expires(zookeeper: ZooKeeperServer, client: KazooClient) -> None:
    paths = Paths()
    node = Node("node-x", "grpc://127.0.0.1:1", "grpc://127.0.0.1:2", "host")
    departed: list[str] = []
    watcher = Membership(client, paths, node).start()
    observer_client = zookeeper.client(client.chroot)
    observer = Membership(observer_client, paths, Node("node-y", "u", "i", "h")).start(departed.append)
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
