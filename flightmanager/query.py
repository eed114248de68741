"""The query lifecycle as a small, pure state machine."""

from __future__ import annotations

import enum


class QueryState(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    def can_move_to(self, target: "QueryState") -> bool:
        return target in _TRANSITIONS[self]


_TERMINAL = frozenset({QueryState.FAILED, QueryState.CANCELLED, QueryState.EXPIRED})

_TRANSITIONS: dict[QueryState, frozenset[QueryState]] = {
    QueryState.PENDING: frozenset(
        {QueryState.RUNNING, QueryState.FAILED, QueryState.CANCELLED, QueryState.EXPIRED}
    ),
    QueryState.RUNNING: frozenset(
        {QueryState.FINISHED, QueryState.FAILED, QueryState.CANCELLED, QueryState.EXPIRED}
    ),
    # A finished result stays readable until it expires or its owner closes it.
    QueryState.FINISHED: frozenset({QueryState.EXPIRED, QueryState.CANCELLED}),
    QueryState.FAILED: frozenset({QueryState.EXPIRED}),
    QueryState.CANCELLED: frozenset({QueryState.EXPIRED}),
    QueryState.EXPIRED: frozenset(),
}


class InvalidTransition(ValueError):
    pass


def transition(current: QueryState, target: QueryState) -> QueryState:
    """Return ``target`` if the lifecycle allows it; raise InvalidTransition otherwise."""
    if not current.can_move_to(target):
        raise InvalidTransition(f"query cannot move from {current.value} to {target.value}")
    return target
