"""The states of a query (their transitions are decided in flightmanager.lifecycle)."""

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


_TERMINAL = frozenset({QueryState.FAILED, QueryState.CANCELLED, QueryState.EXPIRED})
