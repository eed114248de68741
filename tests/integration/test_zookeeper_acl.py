"""ZooKeeper locked: without the cluster's credential nobody reads the secret, registers a
node or sees a query; the node's directories are its user's alone.

Runs against the shared node, which has its own embedded ZooKeeper and so its own
credential (WORK_DIR/zookeeper.credential), as a node started by a user has.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from flightmanager.zk import credential
from flightmanager.zk.manager import connect as zk_connect
from flightmanager.zk.membership import encode_node
from flightmanager.zk.paths import Paths
from flightmanager.records import Node
from tests.integration.conftest import RunningNode, connect

pytestmark = pytest.mark.integration

PATHS = Paths()


def _zookeeper_of(node: RunningNode) -> str:
    line = next(line for line in node.log_lines if "ready:" in line)
    return line.split("ZooKeeper ", 1)[1].split(",")[0].strip()


@pytest.fixture()
def stranger(node: RunningNode) -> Iterator[KazooClient]:
    """A process that reaches ZooKeeper but holds no credential."""
    client = KazooClient(hosts=_zookeeper_of(node), timeout=10)
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


@pytest.fixture()
def impostor(node: RunningNode) -> Iterator[KazooClient]:
    """One that guessed the user name but not the password."""
    client = zk_connect(_zookeeper_of(node), credential.Credential(credential.USER, "x" * 32))
    yield client
    client.stop()
    client.close()


def _member(client: KazooClient) -> None:
    rogue = Node("rogue:1", "grpc://127.0.0.1:1", "grpc://127.0.0.1:2", "rogue-host")
    client.create(PATHS.node(rogue.node_id), encode_node(rogue), ephemeral=True)


@pytest.mark.parametrize("who", ["stranger", "impostor"])
def test_without_the_credential_nothing_is_readable_or_writable(
    node: RunningNode, who: str, request: pytest.FixtureRequest
) -> None:
    client: KazooClient = request.getfixturevalue(who)
    with connect(node) as conn, conn.cursor() as cur:  # a query, so that there is one to look for
        cur.execute("SELECT id FROM range(0, 10, 1, 2)")
        assert len(cur.fetchall()) == 10
    for read in (lambda: client.get(PATHS.secret), lambda: client.get_children(PATHS.queries),
                 lambda: client.get_children(PATHS.nodes), lambda: client.get(PATHS.root)):
        with pytest.raises(NoAuthError):
            read()
    with pytest.raises(NoAuthError):
        _member(client)
    with pytest.raises(NoAuthError):
        client.set(PATHS.secret, b"00" * 32)
    with pytest.raises(NoAuthError):
        client.delete(PATHS.root, recursive=True)


def test_the_acl_names_the_credential_alone(node: RunningNode) -> None:
    holder = zk_connect(_zookeeper_of(node), credential.load(node.work_dir / "zookeeper.credential"))
    try:
        assert len(holder.get(PATHS.secret)[0]) == 64  # the positive control: the credential reads it
        paths = [PATHS.root, PATHS.secret, PATHS.nodes, PATHS.queries]
        paths += [PATHS.query(child) for child in holder.get_children(PATHS.queries)]
        for path in paths:
            acls, _ = holder.get_acls(path)
            assert [(acl.id.scheme, acl.id.id.split(":")[0]) for acl in acls] == [("digest", credential.USER)], path
    finally:
        holder.stop()
        holder.close()


def test_a_rogue_member_gets_no_part_of_any_result(node: RunningNode, stranger: KazooClient) -> None:
    with pytest.raises(NoAuthError):
        _member(stranger)
    import pyarrow.flight as flight

    from flightsql.protocol import codec

    from flightsql.protocol import commands as cmd
    from tests.integration.conftest import flight_client

    client, options = flight_client(node)
    descriptor = flight.FlightDescriptor.for_command(
        codec.encode_command(cmd.CommandStatementQuery(query="SELECT id FROM range(0, 4000, 1, 4)")))
    info = client.get_flight_info(descriptor, options)
    assert {loc.uri.decode() for e in info.endpoints for loc in e.locations} == {node.uri}
    ids = sorted(i for e in info.endpoints for i in client.do_get(e.ticket, options).read_all().column("id").to_pylist())
    assert ids == list(range(4000))


def _others_may(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def test_the_nodes_directories_are_private(node: RunningNode) -> None:
    zookeeper_dir = node.work_dir / "zookeeper"
    assert not _others_may(node.work_dir)
    assert not _others_may(zookeeper_dir)
    assert not _others_may(node.work_dir / "zookeeper.credential")
    exposed = [p for p in zookeeper_dir.rglob("*") if _others_may(p)]
    assert exposed == [], exposed
    assert any(zookeeper_dir.rglob("log.*")), "the transaction log exists (and is private)"
