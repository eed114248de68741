"""What the manager keeps: nodes, endpoints, and its record of each query."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from flightmanager.errors import FlightManagerError
from flightmanager.lifecycle import Life
from flightmanager.push import PushTarget
from flightmanager.query import QueryState
from flightmanager.spool import ResultSpool
from flightmanager.status import NodeStatus, QueryStatus, Served, StreamTally

if TYPE_CHECKING:
    from flightmanager.registry import Registry


@dataclass(frozen=True)
class Node:
    """A member of the cluster: where clients read and where executors push."""

    node_id: str
    public_uri: str
    internal_uri: str
    host: str
    #: the node's HTTP status page, if it runs one
    status_uri: str | None = None

    def push_target(self) -> PushTarget:
        return PushTarget(self.node_id, self.internal_uri, self.host)

    def status(self) -> NodeStatus:
        return NodeStatus(self.node_id, self.public_uri, self.host, self.status_uri)


@dataclass(frozen=True)
class Endpoint:
    """One node's share of a result."""

    node: Node
    query_id: str
    expires_at: float


@dataclass(frozen=True)
class Submitted:
    query_id: str
    schema: pa.Schema
    endpoints: tuple[Endpoint, ...]
    ordered: bool


#: seconds a draining node waits for the first reader of a result the driver made
DRIVER_RESULT_GRACE = 5.0


@dataclass(eq=False)
class QueryRecord:
    """What a node keeps of a query it coordinates or serves: its lifecycle (decided by
    :mod:`flightmanager.lifecycle`), its spool, and what it served."""

    life: Life
    owner: str
    sql: str
    schema: pa.Schema
    ordered: bool
    #: where the query is registered: the cluster's registry, or this node's own
    registry: Registry = field(repr=False)
    spool: ResultSpool | None = field(default=None, repr=False)
    #: the nodes that hold parts of the result (where its endpoints are)
    nodes: tuple[Node, ...] = ()
    #: every partition pushed to the coordinator, one endpoint
    single: bool = False
    #: the node's own business (its warm-up): in no metric and on no status page
    internal: bool = False
    #: made by the driver (a command's output, metadata), served by this node alone
    driver: bool = False
    #: what each stream of this node served (one tally per stream)
    tallies: list[StreamTally] = field(default_factory=list, repr=False)
    #: streams of this node's part open now, and whether one has delivered all of it
    open_streams: int = field(default=0, repr=False)
    delivered: bool = field(default=False, repr=False)

    @property
    def query_id(self) -> str:
        return self.life.query_id

    @property
    def state(self) -> QueryState:
        return self.life.state

    @property
    def error(self) -> FlightManagerError | None:
        return self.life.error

    @property
    def coordinator(self) -> str:
        return self.life.coordinator

    @property
    def created(self) -> float:
        return self.life.created

    @property
    def expires_at(self) -> float:
        return self.life.expires_at

    @property
    def finished_at(self) -> float | None:
        return self.life.finished_at

    @property
    def outcome(self) -> QueryState | None:
        return self.life.outcome

    def needed(self, now: float) -> bool:
        """Would a reader still lose something if this node went away now?

        A result the driver made (a command's output, metadata) is read right after it
        is answered, if ever: one nobody began to read within :data:`DRIVER_RESULT_GRACE`
        seconds (the output of a ``SET`` or a DDL statement a client did not fetch) keeps
        no draining node waiting."""
        if self.internal or self.spool is None:
            return False
        if self.state in (QueryState.PENDING, QueryState.RUNNING):
            return True
        if self.state is not QueryState.FINISHED or self.delivered:
            return False
        if self.open_streams > 0 or self.tallies:
            return True  # being read, or read in part and maybe retried
        return not (self.driver and now - (self.finished_at or self.created) > DRIVER_RESULT_GRACE)

    def status(self, node_id: str) -> QueryStatus:
        """This node's view of the query."""
        served = {node_id: Served.of(self.tallies)} if self.tallies else {}
        return QueryStatus(
            self.query_id, self.owner, self.sql, self.state.value, self.coordinator, self.created,
            self.finished_at, None if self.error is None else self.error.message, served,
            None if self.outcome is None else self.outcome.value,
        )


@dataclass(frozen=True)
class Progress:
    """How far a query has come, as a client polling it is told."""

    state: QueryState
    #: in [0, 1]: Spark tasks done of all the job's tasks (1 when complete; None: unknown here)
    fraction: float | None
    #: complete: the result is whole (nothing more to poll)
    done: bool
    expires_at: float
    #: while it waits for a slot: 1 for the next to start
    queue_position: int | None = None
    tasks_done: int | None = None
    tasks_total: int | None = None

    def to_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {"state": self.state.value}
        for name in ("fraction", "queue_position", "tasks_done", "tasks_total"):
            value = getattr(self, name)
            if value is not None:
                doc[name] = value
        return doc


@dataclass(frozen=True)
class SpoolSettings:
    memory_budget: int = 512 * 1024 * 1024
    disk_budget: int = 64 * 1024 * 1024 * 1024
    spill_dir: Path = Path("work/spill")
    result_ttl: float = 600.0
    #: finished and failed queries kept for status pages after their results expire
    history: int = 200
