"""A SparkFlightManager on ZooKeeper: every result spread over every live node.

The coordinator (the node a client asked) registers the query, gives the FlightInfo
one endpoint per live node, and runs the job; executors push each partition to a
node.  Which attempt of a partition counts is decided by a claim znode (the first
committed attempt anywhere wins).  When the job ends the coordinator writes each
node's manifest and the final state; every node watches the query's znode and ends
its streams accordingly.  Losing the coordinator, or a node holding part of the
result, fails the query on every node with the cause named.  The decisions are
:mod:`flightmanager.lifecycle`'s; this module only connects the manager to
ZooKeeper (:class:`QueryRegistry`, :class:`Membership`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError

from flightmanager.admission import Limits
from flightmanager.errors import ZnodeTooLarge
from flightmanager.history import Retention
from flightmanager.manager import SparkFlightManager
from flightmanager.peers import Keepalive
from flightmanager.records import Node, SpoolSettings
from flightmanager.tls import TlsFiles
from flightmanager.zk.credential import Credential
from flightmanager.zk.history import ZooKeeperHistory
from flightmanager.zk.membership import Membership
from flightmanager.zk.paths import Paths
from flightmanager.zk.registry import QueryRegistry

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: the largest znode the cluster writes; ZooKeeper's own limit (jute.maxbuffer, 1 MB)
#: is not refused but answered by closing the session's connection, which kazoo opens
#: again and sends the same request on: a loop that wedges every user of the client
MAX_ZNODE = 512 * 1024


class BoundedKazooClient(KazooClient):  # type: ignore[misc]  # kazoo has no types
    """A kazoo client that refuses, with an error, data ZooKeeper would choke on."""

    def create_async(self, path: str, value: bytes = b"", *args: object, **kwargs: object) -> Any:
        _check_size(path, value)
        return super().create_async(path, value, *args, **kwargs)

    def set_async(self, path: str, value: bytes, version: int = -1) -> Any:
        _check_size(path, value)
        return super().set_async(path, value, version)


def _check_size(path: str, value: bytes) -> None:
    if value is not None and len(value) > MAX_ZNODE:
        raise ZnodeTooLarge(f"{len(value):,} bytes are too many to record in ZooKeeper at {path} "
                            f"(at most {MAX_ZNODE:,})")


def connect(connect_string: str, credential: Credential | None = None, timeout: float = 30.0) -> KazooClient:
    """A started kazoo client; ``host:port[,host:port][/chroot]`` (the chroot is created).

    With a credential, the client authenticates with it and everything it creates is
    readable and writable with that credential alone (see :mod:`flightmanager.zk.credential`)."""
    secured: dict[str, object] = {}
    if credential is not None:
        secured = {"auth_data": credential.auth_data, "default_acl": credential.acl}
    hosts, slash, chroot = connect_string.partition("/")
    if slash and chroot:
        bootstrap = KazooClient(hosts=hosts, timeout=10.0, **secured)
        bootstrap.start(timeout=timeout)
        try:
            bootstrap.ensure_path("/" + chroot)
        finally:
            bootstrap.stop()
            bootstrap.close()
    client = BoundedKazooClient(hosts=connect_string, timeout=10.0, **secured)
    client.start(timeout=timeout)
    return client


def cluster_secret(client: KazooClient, paths: Paths) -> bytes:
    """The secret every node shares (tokens, pushes): created by the first node."""
    client.ensure_path(paths.root) if paths.root != "/" else None
    with contextlib.suppress(NodeExistsError):
        client.create(paths.secret, secrets.token_hex(32).encode())
    data, _ = client.get(paths.secret)
    return bytes.fromhex(data.decode())


def zookeeper_manager(
    spark: SparkSession,
    node: Node,
    push_key: bytes,
    settings: SpoolSettings,
    client: KazooClient,
    paths: Paths,
    keepalive: Keepalive = Keepalive(),
    limits: Limits = Limits(),
    retention: Retention = Retention(),
    tls: TlsFiles | None = None,
) -> SparkFlightManager:
    """A manager whose queries, members and history are kept in ZooKeeper, shared by every node."""
    return SparkFlightManager(
        spark, node, push_key, settings, QueryRegistry(client, paths), Membership(client, paths, node), keepalive,
        limits, ZooKeeperHistory(client, paths, retention), tls,
    )
