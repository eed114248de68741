"""Every znode path the project uses; no other code joins paths.

Layout under a root (default ``/flightsql``)::

    <root>/secret                                 cluster secret (tokens, pushes)
    <root>/nodes/<node-id>                        ephemeral: Node as JSON (URIs, host, status page)
    <root>/draining/<node-id>                     ephemeral: the node takes no new work and leaves
                                                  once what it holds has been read
    <root>/queries/<query-id>                     QueryInfo as JSON (state, owner, SQL, times, ...)
    <root>/queries/<query-id>/claims/<piece>      first committed push of a piece of a partition
                                                  (key: partition * 2^20 + index): {"node",
                                                  "attempt", "rows", "push", "first", "last"}
                                                  (manifests are made from these)
    <root>/queries/<query-id>/manifests/<node-id> {piece key: rows} a node must serve
    <root>/queries/<query-id>/served/<node-id>    {"rows", "bytes", "streams"} a node has served,
                                                  rewritten by that node when one of its streams ends
    <root>/sessions/<key>                         a client session's recorded state (SessionState as
                                                  JSON; key: a digest of user and session id); its
                                                  modification time is the session's last use
    <root>/history/q-<sequence>                   a query's last status, kept after its result expired
                                                  (bounded in count and age, oldest deleted first)
    <root>/versions/<key>                         a table's version: its znode version, bumped by every
                                                  write into it (kept answers of older versions are stale)
    <root>/writes/<key>/<lock>                    kazoo lock recipe: the write into a table running
                                                  now, and those waiting (key: a digest of the table's
                                                  qualified name)

A query's znodes are deleted together when its result expires.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paths:
    root: str = "/flightsql"

    def __post_init__(self) -> None:
        if not self.root.startswith("/") or (self.root.endswith("/") and self.root != "/"):
            raise ValueError(f"ZooKeeper root must be an absolute path without a trailing /: {self.root!r}")

    def _join(self, *parts: str) -> str:
        for part in parts:
            if not part or "/" in part:
                raise ValueError(f"invalid znode name {part!r}")
        base = "" if self.root == "/" else self.root
        return "/".join([base, *parts])

    @property
    def secret(self) -> str:
        return self._join("secret")

    @property
    def nodes(self) -> str:
        return self._join("nodes")

    def node(self, node_id: str) -> str:
        return self._join("nodes", node_id)

    @property
    def draining(self) -> str:
        return self._join("draining")

    def draining_node(self, node_id: str) -> str:
        return self._join("draining", node_id)

    @property
    def sessions(self) -> str:
        return self._join("sessions")

    def session(self, key: str) -> str:
        return self._join("sessions", key)

    @property
    def history(self) -> str:
        return self._join("history")

    def history_entry(self, name: str) -> str:
        return self._join("history", name)

    def table_version(self, key: str) -> str:
        return self._join("versions", key)

    def writes(self, key: str) -> str:
        return self._join("writes", key)

    @property
    def queries(self) -> str:
        return self._join("queries")

    def query(self, query_id: str) -> str:
        return self._join("queries", query_id)

    def claims(self, query_id: str) -> str:
        return self._join("queries", query_id, "claims")

    def claim(self, query_id: str, piece: int) -> str:
        """The claim of a piece of a partition (its key: see flightmanager.claims)."""
        return self._join("queries", query_id, "claims", str(piece))

    def manifests(self, query_id: str) -> str:
        return self._join("queries", query_id, "manifests")

    def manifest(self, query_id: str, node_id: str) -> str:
        return self._join("queries", query_id, "manifests", node_id)

    def served(self, query_id: str) -> str:
        return self._join("queries", query_id, "served")

    def served_by(self, query_id: str, node_id: str) -> str:
        return self._join("queries", query_id, "served", node_id)
