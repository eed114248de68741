"""Prepared statements held by a node: SQL, kind, schemas and bound parameters."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from flightsql.errors import NotFound, PermissionDenied
from flightsql.server.statements import Statement
from flightsql.server.tickets import StatementHandle


@dataclass
class PreparedStatement:
    handle: StatementHandle
    owner: str
    session_id: str | None
    statement: Statement
    dataset_schema: pa.Schema | None
    parameters: list[list[Any]] = field(default_factory=list)
    #: the DataFrame analysed at prepare time, kept for the first execution
    analysed: Any = None
    created: float = field(default_factory=time.time)


class PreparedStatements:
    def __init__(self, limit_per_user: int = 1000) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, PreparedStatement] = {}
        self._limit = limit_per_user

    def add(self, prepared: PreparedStatement) -> None:
        with self._lock:
            owned = [p for p in self._items.values() if p.owner == prepared.owner]
            if len(owned) >= self._limit:  # forgotten handles do not pile up forever
                oldest = min(owned, key=lambda p: p.created)
                del self._items[oldest.handle.handle_id]
            self._items[prepared.handle.handle_id] = prepared

    def get(self, raw_handle: bytes, user: str) -> PreparedStatement:
        handle = StatementHandle.decode(raw_handle)
        prepared = self._items.get(handle.handle_id)
        if prepared is None:
            raise NotFound("prepared statement not found (closed, or prepared on another node)")
        if prepared.owner != user:
            raise PermissionDenied("prepared statement belongs to another user")
        return prepared

    def remove(self, raw_handle: bytes, user: str) -> None:
        prepared = self.get(raw_handle, user)
        with self._lock:
            self._items.pop(prepared.handle.handle_id, None)
