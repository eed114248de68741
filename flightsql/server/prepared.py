"""Prepared statements: the handle carries the statement; a node keeps what it worked out.

A handle (:class:`~flightsql.server.tickets.Handles`) names its user and carries its SQL and
any bound values, so every node can run it.  The node that prepared a statement keeps its
analysis for the first execution and its schema; another node prepares it again from the
handle the first time it sees it.  Values bound with DoPut come back in a new handle
(``DoPutPreparedStatementResult.prepared_statement_handle``) unless they are large; large
ones stay on the node that received them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from flightsql.server.statements import Statement, parameter_rows
from flightsql.server.tickets import Handles, StatementHandle

#: bound values larger than this (as Arrow IPC) stay on the node instead of in the handle
MAX_HANDLE_PARAMETERS = 1 << 20
#: prepared statements a node keeps what it worked out for
MAX_KEPT = 10_000


@dataclass
class PreparedStatement:
    handle_id: str
    owner: str
    statement: Statement
    dataset_schema: pa.Schema | None
    parameters: list[list[Any]] = field(default_factory=list)
    #: the DataFrame analysed at prepare time, kept for the first execution
    analysed: Any = None
    created: float = field(default_factory=time.time)


#: how a node prepares a statement it has not seen: its Statement and result schema
Prepare = Callable[[str], tuple[Statement, "pa.Schema | None"]]


class PreparedStatements:
    def __init__(self, handles: Handles, kept: int = MAX_KEPT) -> None:
        self.handles = handles
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str], PreparedStatement] = OrderedDict()
        self._kept = kept

    def add(self, user: str, statement: Statement, dataset_schema: pa.Schema | None,
            analysed: Any = None) -> tuple[PreparedStatement, bytes]:
        prepared = PreparedStatement(Handles.new_id(), user, statement, dataset_schema, analysed=analysed)
        self._keep(prepared)
        return prepared, self.handles.issue(StatementHandle(prepared.handle_id, statement.sql), user)

    def _keep(self, prepared: PreparedStatement) -> None:
        with self._lock:
            self._items[(prepared.owner, prepared.handle_id)] = prepared
            self._items.move_to_end((prepared.owner, prepared.handle_id))
            while len(self._items) > self._kept:  # forgotten handles do not pile up forever
                self._items.popitem(last=False)

    def get(self, raw_handle: bytes, user: str, prepare: Prepare) -> PreparedStatement:
        """The statement of a handle issued to ``user``, prepared here if it was prepared
        elsewhere; bound values the handle carries replace those held here."""
        handle = self.handles.open(raw_handle, user)
        prepared = self._items.get((user, handle.handle_id))
        if prepared is None:
            statement, schema = prepare(handle.sql)
            prepared = PreparedStatement(handle.handle_id, user, statement, schema)
            self._keep(prepared)
        if handle.parameters is not None:
            prepared.parameters = parameter_rows(_batches(handle.parameters))
        return prepared

    def bind(self, prepared: PreparedStatement, batches: Sequence[pa.RecordBatch], schema: pa.Schema) -> bytes | None:
        """Bind values: held here, and carried by the new handle returned unless they are large
        (None: the old handle stands, and the values are on this node only)."""
        prepared.parameters = parameter_rows(batches)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        data = sink.getvalue().to_pybytes()
        if len(data) > MAX_HANDLE_PARAMETERS:
            return None
        return self.handles.issue(StatementHandle(prepared.handle_id, prepared.statement.sql, data), prepared.owner)

    def remove(self, raw_handle: bytes, user: str) -> None:
        handle = self.handles.open(raw_handle, user)
        with self._lock:
            self._items.pop((user, handle.handle_id), None)


def _batches(data: bytes) -> list[pa.RecordBatch]:
    return list(pa.ipc.open_stream(data))
