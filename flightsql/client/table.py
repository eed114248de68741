"""The printed result: the first rows as a table, and how many rows there were.

Only the first ``max_rows`` rows are kept, already formatted as text; the rest
are counted as they stream by, so printing a result of any size needs memory
for ``max_rows`` rows only. On a terminal the table fits its width; elsewhere
(a pipe, a file) it is as wide as its widest cells, so nothing is cut.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import io
import sys
from typing import IO, Any

import pyarrow as pa
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

NULL = "NULL"
NULL_STYLE = "dim italic"


def format_value(value: Any, nested: bool = False) -> str:
    """One cell as text. Strings inside arrays, maps and structs are quoted."""
    if value is None:
        return "null" if nested else NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value) if nested else value
    if isinstance(value, bytes):
        return "0x" + value.hex() if len(value) <= 64 else "base64:" + base64.b64encode(value).decode()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v, True)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        if value and all(isinstance(item, tuple) and len(item) == 2 for item in value):  # a map's entries
            return "{" + ", ".join(f"{format_value(k, True)}: {format_value(v, True)}" for k, v in value) + "}"
        return "[" + ", ".join(format_value(item, True) for item in value) + "]"
    return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _column_values(column: pa.Array) -> list[str | None]:
    try:
        values = column.to_pylist()
    except (pa.ArrowException, ValueError, OverflowError):  # e.g. a time zone this machine lacks
        return [None if not scalar.is_valid else str(scalar) for scalar in column]
    return [None if v is None else format_value(v) for v in values]


def _right_aligned(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind))


class TableSink:
    """Keeps the first ``max_rows`` rows (0: every row) as text and counts the others."""

    def __init__(self, max_rows: int, out: IO[str] | None = None) -> None:
        self.max_rows = max_rows
        self.out = out
        self.started = False
        self.rows = 0
        self.bytes = 0
        self.schema: pa.Schema | None = None
        self.cells: list[list[str | None]] = []

    def begin(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.started = True

    def write(self, batch: pa.RecordBatch) -> None:
        room = batch.num_rows if self.max_rows == 0 else max(self.max_rows - len(self.cells), 0)
        if room:
            head = batch.slice(0, min(room, batch.num_rows))
            columns = [_column_values(column) for column in head.columns]
            self.cells.extend(list(row) for row in zip(*columns, strict=False))
        self.rows += batch.num_rows
        self.bytes += batch.nbytes

    def abort(self) -> None:
        self.cells = []

    def footer(self) -> str:
        noun = "row" if self.rows == 1 else "rows"
        if len(self.cells) < self.rows:
            return f"first {len(self.cells):,} of {self.rows:,} {noun} (--max-rows {self.max_rows})"
        return f"{self.rows:,} {noun}"

    def table(self) -> Table:
        table = Table(box=box.SIMPLE_HEAD, header_style="bold", show_edge=False, pad_edge=False)
        for field in self.schema or []:
            table.add_column(Text(field.name), justify="right" if _right_aligned(field.type) else "left")
        for row in self.cells:
            table.add_row(*(Text(NULL, style=NULL_STYLE) if cell is None else Text(cell) for cell in row))
        return table

    def finish(self) -> None:
        out = sys.stdout if self.out is None else self.out
        table = self.table()
        console = Console(file=out, highlight=False)
        if not console.is_terminal:
            needed = Console(file=io.StringIO(), width=1 << 20).measure(table).maximum
            console = Console(file=out, width=max(needed, 40), highlight=False)
        console.print(table)
        console.print(Text(self.footer()))
