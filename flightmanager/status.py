"""What a node can tell about the cluster: live nodes and running and recent queries.

Pure data, built by the manager and shown by status pages.  The query registry
(ZooKeeper) knows every query spread over the cluster until its result expires;
each node also remembers the queries it took part in, as long as its bounded
history keeps them (``SpoolSettings.history``), and the results it alone holds.
:func:`merge` joins the two views.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass
class StreamTally:
    """Rows and bytes one stream has sent so far (written by that stream alone)."""

    rows: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Served:
    """What one node served of one query: rows, Arrow IPC bytes, and streams opened."""

    rows: int = 0
    bytes: int = 0
    streams: int = 0

    @classmethod
    def of(cls, tallies: Iterable[StreamTally]) -> Served:
        rows = nbytes = streams = 0
        for tally in list(tallies):
            rows, nbytes, streams = rows + tally.rows, nbytes + tally.bytes, streams + 1
        return cls(rows, nbytes, streams)

    def to_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "bytes": self.bytes, "streams": self.streams}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Served:
        return cls(int(doc.get("rows", 0)), int(doc.get("bytes", 0)), int(doc.get("streams", 0)))


@dataclass(frozen=True)
class QueryStatus:
    query_id: str
    owner: str
    sql: str
    state: str
    coordinator: str
    created: float
    finished: float | None = None
    error: str | None = None
    #: node id -> what that node served
    served: Mapping[str, Served] = field(default_factory=dict)
    #: for an EXPIRED result: the state it had before (FINISHED, FAILED, CANCELLED)
    outcome: str | None = None
    #: a running query's progress as its coordinator knows it (Progress.to_dict)
    progress: Mapping[str, Any] | None = None

    @property
    def running(self) -> bool:
        return self.state in ("PENDING", "RUNNING")

    def duration(self, now: float) -> float:
        return max(0.0, (self.finished if self.finished is not None else now) - self.created)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "query_id": self.query_id,
            "user": self.owner,
            "sql": self.sql,
            "state": self.state,
            "outcome": self.outcome,
            "coordinator": self.coordinator,
            "created": self.created,
            "finished": self.finished,
            "duration": round(self.duration(now), 3),
            "error": self.error,
            "served": {node: served.to_dict() for node, served in sorted(self.served.items())},
            "rows_served": sum(s.rows for s in self.served.values()),
            "bytes_served": sum(s.bytes for s in self.served.values()),
            "progress": None if self.progress is None else dict(self.progress),
        }


    def to_record(self) -> dict[str, Any]:
        """What the history keeps of a query (see :mod:`flightmanager.history`): its SQL
        clipped as the registry's (a znode holds at most 1 MB)."""
        from flightmanager.registry import QueryInfo

        return {"query_id": self.query_id, "user": self.owner, "sql": QueryInfo.clip_sql(self.sql),
                "state": self.state,
                "outcome": self.outcome, "coordinator": self.coordinator, "created": self.created,
                "finished": self.finished, "error": self.error,
                "served": {node: served.to_dict() for node, served in sorted(self.served.items())}}

    @classmethod
    def from_record(cls, doc: Mapping[str, Any]) -> QueryStatus:
        served = {str(node): Served.from_dict(s) for node, s in dict(doc.get("served") or {}).items()}
        return cls(str(doc["query_id"]), str(doc["user"]), str(doc["sql"]), str(doc["state"]),
                   str(doc.get("coordinator", "")), float(doc["created"]), doc.get("finished"), doc.get("error"),
                   served, doc.get("outcome"))


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    public_uri: str
    host: str
    status_uri: str | None = None
    #: taking no new work, leaving once what it holds has been read
    draining: bool = False
    #: times the node's Spark driver died and the node started again (known for this node only)
    driver_restarts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "public_uri": self.public_uri, "host": self.host,
                "status_uri": self.status_uri, "draining": self.draining, "driver_restarts": self.driver_restarts}


@dataclass(frozen=True)
class ClusterStatus:
    """One node's view of the cluster at ``generated`` (seconds since the epoch)."""

    node: NodeStatus
    generated: float
    nodes: tuple[NodeStatus, ...]
    queries: tuple[QueryStatus, ...]

    @property
    def running(self) -> tuple[QueryStatus, ...]:
        return tuple(q for q in self.queries if q.running)

    @property
    def recent(self) -> tuple[QueryStatus, ...]:
        return tuple(q for q in self.queries if not q.running)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node.to_dict(),
            "generated": self.generated,
            "nodes": [n.to_dict() for n in self.nodes],
            "running": [q.to_dict(self.generated) for q in self.running],
            "recent": [q.to_dict(self.generated) for q in self.recent],
        }


def merge(
    registry: Iterable[QueryStatus], local: Iterable[QueryStatus], this_node: str, recent: int = 100,
    history: Iterable[QueryStatus] = (),
) -> tuple[QueryStatus, ...]:
    """One list of queries from the registry's view, this node's own, and the history.

    The registry is right about a query's state (the coordinator writes it there);
    this node is right about what it serves itself, live, while a stream runs.  A
    query the registry no longer knows (its result expired) is listed as this node
    remembers it, else as the history keeps it.  Running queries come first, then at
    most ``recent`` others; each group newest first.
    """
    by_id: dict[str, QueryStatus] = {q.query_id: q for q in history}
    by_id.update({q.query_id: q for q in registry})
    for mine in local:
        shared = by_id.get(mine.query_id)
        if shared is None or shared.state == "EXPIRED":
            by_id[mine.query_id] = mine
            continue
        served = dict(shared.served)
        if this_node in mine.served:
            served[this_node] = mine.served[this_node]
        by_id[mine.query_id] = replace(
            shared, served=served, finished=shared.finished if shared.finished is not None else mine.finished,
            progress=mine.progress if shared.running else None,
        )
    ordered = sorted(by_id.values(), key=lambda q: q.created, reverse=True)
    running = [q for q in ordered if q.running]
    done = [q for q in ordered if not q.running][: max(0, recent)]
    return tuple(running + done)
