"""The query lifecycle as one pure state machine.

Everything that can happen to a query on a node arrives as an event; :func:`step`
returns the query's new state and the actions the node must carry out, all as
dataclasses.  Nothing here touches ZooKeeper, Spark, a spool or a clock: the manager
feeds events in and carries actions out, so every transition is decided in this one
place and can be tested in microseconds.

A node runs one :class:`Life` per query it coordinates or holds a part of.  The
coordinator runs the job and speaks for the query in the registry; every other node
follows the registry's record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Union

from flightmanager.errors import FlightManagerError, NodeLost, QueryCancelled
from flightmanager.query import QueryState

ACTIVE = (QueryState.PENDING, QueryState.RUNNING)


@dataclass(frozen=True)
class Life:
    """What one node knows of one query's lifecycle."""

    query_id: str
    #: this node, the node that runs the job, and the nodes that hold parts of the result
    me: str
    coordinator: str
    nodes: frozenset[str]
    #: how long a result stays readable after it is complete, and when this one expires
    ttl: float
    #: when the query was made, and when its result expires
    created: float
    expires_at: float
    state: QueryState = QueryState.PENDING
    error: FlightManagerError | None = None
    finished_at: float | None = None
    #: for an EXPIRED query: the state it had before
    outcome: QueryState | None = None
    #: the query's end has been counted (the coordinator counts each query once)
    counted: bool = False
    #: pieces of partitions whose winning push this node has seen
    claimed: int = 0

    @property
    def coordinating(self) -> bool:
        return self.me == self.coordinator

    def depends_on(self, node_id: str) -> bool:
        """Does the result need ``node_id`` (it runs the job or holds a part)?"""
        return node_id != self.me and (node_id == self.coordinator or node_id in self.nodes)


# -- events ------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """A job thread took the query up: Spark is running it now."""


@dataclass(frozen=True)
class ClaimWon:
    """A push of a piece (its key: see flightmanager.claims) won its claim on node ``node_id``."""

    piece: int
    node_id: str


@dataclass(frozen=True)
class JobSucceeded:
    """The coordinator's job ended; ``manifests``: what each node serves, from the claims."""

    manifests: Mapping[str, Mapping[int, int]]
    at: float


@dataclass(frozen=True)
class JobFailed:
    error: FlightManagerError
    at: float


@dataclass(frozen=True)
class ManifestWritten:
    """The registry says the query finished, and this node's manifest is ``manifest``."""

    manifest: Mapping[int, int]
    finished_at: float | None


@dataclass(frozen=True)
class EndedElsewhere:
    """The registry says the query failed or was cancelled (another node decided)."""

    state: QueryState
    error: FlightManagerError
    finished_at: float


@dataclass(frozen=True)
class NodeLeft:
    """``node_id`` left the cluster (its ZooKeeper session ended)."""

    node_id: str
    at: float


@dataclass(frozen=True)
class NodeSuspected:
    """``node_id`` stopped answering on its channel (its host may be cut off)."""

    node_id: str
    host: str
    at: float


@dataclass(frozen=True)
class CancelRequested:
    by: str
    at: float


@dataclass(frozen=True)
class Renewed:
    """The owner asked for more time (RenewFlightEndpoint)."""

    expires_at: float


@dataclass(frozen=True)
class ExtendedElsewhere:
    """The registry carries a later expiry (renewed through another node)."""

    expires_at: float


@dataclass(frozen=True)
class TimeUp:
    """The expiry that was scheduled has come."""

    now: float


@dataclass(frozen=True)
class Expire:
    """Free the result now: closed by its owner, deleted from the registry, node stopping."""

    reason: str


@dataclass(frozen=True)
class RecordingFailed:
    """The registry could not be written: the other nodes cannot learn how the query ends."""

    error: FlightManagerError
    at: float


@dataclass(frozen=True)
class WaitedTooLong:
    """The query waited for a slot to run longer than the node allows."""

    error: FlightManagerError
    at: float


@dataclass(frozen=True)
class DrainTimedOut:
    """This node is stopping and ran out of time before its part was read."""

    at: float


Event = Union[  # noqa: UP007 - a runtime alias, evaluated on Python 3.10
    Started, ClaimWon, JobSucceeded, JobFailed, ManifestWritten, EndedElsewhere, NodeLeft, NodeSuspected,
    CancelRequested, Renewed, ExtendedElsewhere, TimeUp, Expire, DrainTimedOut, RecordingFailed, WaitedTooLong,
]

# -- actions ------------------------------------------------------------------------


@dataclass(frozen=True)
class CancelJob:
    """Stop the query's Spark job (its job group)."""


@dataclass(frozen=True)
class LeaveQueue:
    """The query ended before it ran: it no longer waits for a slot."""


@dataclass(frozen=True)
class FinishSpool:
    """Readers of this node get exactly these partitions, then the stream ends."""

    manifest: Mapping[int, int]


@dataclass(frozen=True)
class FailSpool:
    """Every reader of this node gets ``error``."""

    error: FlightManagerError


@dataclass(frozen=True)
class CloseSpool:
    """Free what this node holds of the result."""

    reason: str


@dataclass(frozen=True)
class WriteManifests:
    """Tell every other node what it serves (the coordinator, when the job succeeded)."""

    manifests: Mapping[str, Mapping[int, int]]


@dataclass(frozen=True)
class RecordEnd:
    """Write the query's end to the registry, unless it has ended there already."""

    state: QueryState
    error: FlightManagerError | None
    finished_at: float
    expires_at: float


@dataclass(frozen=True)
class RecordExpiry:
    expires_at: float


@dataclass(frozen=True)
class DeleteRecord:
    """Remove the query from the registry (its claims, manifests and figures go with it)."""


@dataclass(frozen=True)
class ScheduleExpiry:
    at: float


@dataclass(frozen=True)
class CountEnd:
    outcome: QueryState
    seconds_from_start: float


@dataclass(frozen=True)
class Log:
    level: int
    message: str


Action = Union[  # noqa: UP007 - as Event
    CancelJob, LeaveQueue, FinishSpool, FailSpool, CloseSpool, WriteManifests, RecordEnd, RecordExpiry, DeleteRecord,
    ScheduleExpiry, CountEnd, Log,
]


@dataclass(frozen=True)
class Step:
    life: Life
    actions: tuple[Action, ...] = field(default_factory=tuple)


# -- the machine -------------------------------------------------------------------------


def step(life: Life, event: Event) -> Step:
    """The query's next state and what to do, for ``event`` arriving in ``life``."""
    if life.state is QueryState.EXPIRED:
        return Step(life)  # nothing is left to change
    if isinstance(event, Expire):
        return _expire(life, event.reason)
    if isinstance(event, TimeUp):
        return _time_up(life, event.now)
    if isinstance(event, (Renewed, ExtendedElsewhere)):
        return _extend(life, event)
    if life.state in ACTIVE:
        return _active(life, event)
    if life.state is QueryState.FINISHED:
        return _finished(life, event)
    return Step(life)  # FAILED, CANCELLED: only expiry and renewal matter


def _active(life: Life, event: Event) -> Step:
    if isinstance(event, Started):
        return Step(replace(life, state=QueryState.RUNNING)) if life.state is QueryState.PENDING else Step(life)
    if isinstance(event, ClaimWon):
        return Step(replace(life, claimed=life.claimed + 1))
    if isinstance(event, JobSucceeded):
        return _succeeded(life, event) if life.coordinating else Step(life)
    if isinstance(event, ManifestWritten):
        if life.coordinating:
            return Step(life)  # the coordinator finishes from its own job, not from its echo
        done = replace(life, state=QueryState.FINISHED, finished_at=event.finished_at or life.finished_at)
        return Step(done, (FinishSpool(event.manifest),))
    if isinstance(event, JobFailed):
        return _end(life, QueryState.FAILED, event.error, event.at, record=True)
    if isinstance(event, WaitedTooLong):
        if life.state is not QueryState.PENDING:
            return Step(life)  # it started meanwhile
        return _end(life, QueryState.FAILED, event.error, event.at, record=True)
    if isinstance(event, CancelRequested):
        cancelled = QueryCancelled(f"query {life.query_id} was cancelled")
        step_ = _end(life, QueryState.CANCELLED, cancelled, event.at, record=True)
        return Step(step_.life, (*step_.actions, Log(logging.INFO, f"query {life.query_id} cancelled by {event.by}")))
    return _common_failures(life, event)


def _finished(life: Life, event: Event) -> Step:
    # a complete result can still lose a part (a node holding it goes) or be failed by others
    return _common_failures(life, event)


def _common_failures(life: Life, event: Event) -> Step:
    if isinstance(event, (NodeLeft, NodeSuspected)) and life.depends_on(event.node_id):
        cause = "coordinator" if event.node_id == life.coordinator else "node holding part of the result"
        how = "was lost" if isinstance(event, NodeLeft) else f"stopped answering (host {event.host})"
        error = NodeLost(f"query {life.query_id} failed: {cause} {event.node_id} {how}")
        return _end(life, QueryState.FAILED, error, event.at, record=True, warn=True)
    if isinstance(event, DrainTimedOut):
        error = NodeLost(f"query {life.query_id} failed: node {life.me} was stopped before its part was read")
        return _end(life, QueryState.FAILED, error, event.at, record=True, warn=True)
    if isinstance(event, RecordingFailed):
        return _end(life, QueryState.FAILED, event.error, event.at, record=False, warn=True)
    if isinstance(event, EndedElsewhere) and event.state in (QueryState.FAILED, QueryState.CANCELLED):
        return _end(life, event.state, event.error, event.finished_at, record=False)
    return Step(life)


def _succeeded(life: Life, event: JobSucceeded) -> Step:
    # readable for one TTL from completion, at least as long as advertised
    expires_at = max(life.expires_at, event.at + life.ttl)
    done = replace(life, state=QueryState.FINISHED, finished_at=event.at, expires_at=expires_at, counted=True)
    others = {node: m for node, m in event.manifests.items() if node != life.me}
    per_node = {node: sum(m.values()) for node, m in event.manifests.items()}
    actions: list[Action] = [
        WriteManifests(others),
        FinishSpool(event.manifests.get(life.me, {})),
        RecordEnd(QueryState.FINISHED, None, event.at, expires_at),
        ScheduleExpiry(expires_at),
    ]
    if not life.counted:
        actions.append(CountEnd(QueryState.FINISHED, event.at - life.created))
    partitions = sum(len(m) for m in event.manifests.values())
    actions.append(Log(logging.INFO, f"query {life.query_id} finished: {partitions} partitions, "
                                     f"{sum(per_node.values())} rows; rows per node {per_node}"))
    return Step(done, tuple(actions))


def _end(
    life: Life, state: QueryState, error: FlightManagerError, at: float, *, record: bool,
    warn: bool = False,
) -> Step:
    """The query ends here as ``state`` (FAILED or CANCELLED) with ``error``."""
    finished_at = life.finished_at or at
    ended = replace(life, state=state, error=error, finished_at=finished_at, counted=life.counted or life.coordinating)
    actions: list[Action] = []
    if life.coordinating and life.state in ACTIVE:
        actions.append(LeaveQueue() if life.state is QueryState.PENDING else CancelJob())
    actions.append(FailSpool(error))
    if record:
        actions.append(RecordEnd(state, error, finished_at, life.expires_at))
    if life.coordinating and not life.counted:
        actions.append(CountEnd(state, finished_at - life.created))
    if warn or (state is QueryState.FAILED and record):
        actions.append(Log(logging.WARNING, _failure_line(life.query_id, error)))
    return Step(ended, tuple(actions))


def _failure_line(query_id: str, error: FlightManagerError) -> str:
    message = error.message
    return message if query_id in message else f"query {query_id} failed: {message}"


def _expire(life: Life, reason: str) -> Step:
    actions: list[Action] = []
    if life.coordinating and life.state in ACTIVE:
        actions.append(LeaveQueue() if life.state is QueryState.PENDING else CancelJob())
    actions.append(CloseSpool(reason))
    if life.coordinating:
        actions.append(DeleteRecord())
    actions.append(Log(logging.INFO, f"query {life.query_id} result {reason}; spool freed"))
    return Step(replace(life, state=QueryState.EXPIRED, outcome=life.state), tuple(actions))


def _time_up(life: Life, now: float) -> Step:
    if life.state in ACTIVE:
        # a result's lifetime starts when it is complete: look again one TTL on
        later = max(life.expires_at, now + life.ttl)
        return Step(replace(life, expires_at=later), (ScheduleExpiry(later),))
    if life.expires_at > now:
        return Step(life, (ScheduleExpiry(life.expires_at),))  # renewed meanwhile
    return _expire(life, "expired")


def _extend(life: Life, event: Renewed | ExtendedElsewhere) -> Step:
    if isinstance(event, Renewed):
        extended = replace(life, expires_at=event.expires_at)
        return Step(extended, (ScheduleExpiry(event.expires_at), RecordExpiry(event.expires_at)))
    if event.expires_at <= life.expires_at:
        return Step(life)
    return Step(replace(life, expires_at=event.expires_at), (ScheduleExpiry(event.expires_at),))
