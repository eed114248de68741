"""The progress display on standard error while a result streams: rows, bytes, rates.

``auto`` shows it only when standard error is a terminal; ``always`` draws it
even when it is not (with terminal control codes); ``never`` hides it. When the
server announces the row count the bar fills; otherwise it pulses. The display
is erased when the result is complete: the printed table's footer, or the
summary line after writing a file, gives the final count.
"""

from __future__ import annotations

import sys
from typing import IO

from rich import filesize
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TimeElapsedColumn
from rich.text import Text

from flightsql.client.endpoints import EndpointState

FORCED_WIDTH = 120


def _rate(task: Task, amount: float) -> float:
    elapsed = task.elapsed or 0.0
    return amount / elapsed if elapsed > 0 else 0.0


class _Rows(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{int(task.completed):,} rows", style="progress.download")


class _Bytes(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(filesize.decimal(int(task.fields["bytes"])), style="progress.filesize")


class _Rates(ProgressColumn):
    def render(self, task: Task) -> Text:
        rows = _rate(task, task.completed)
        size = _rate(task, task.fields["bytes"])
        return Text(f"{_count(rows)} rows/s, {filesize.decimal(int(size))}/s", style="progress.data.speed")


class _Endpoints(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = task.fields["endpoints"]
        noun = "endpoint" if total == 1 else "endpoints"
        return Text(f"{task.fields['done']}/{total} {noun}", style="progress.remaining")


def _count(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f}"


def shows(mode: str, stream: IO[str]) -> bool:
    """Whether the display is drawn in this mode on this stream."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class QueryProgress:
    """A context manager; ``advance`` after every batch, ``endpoint_done`` after every stream."""

    def __init__(self, mode: str, endpoints: int, total_rows: int | None = None,
                 stream: IO[str] | None = None) -> None:
        stream = sys.stderr if stream is None else stream
        self.enabled = shows(mode, stream)
        self._progress: Progress | None = None
        self._task = None
        self._bytes = 0
        self._done = 0
        self._rows = 0
        if not self.enabled:
            return
        forced = mode == "always" and not shows("auto", stream)
        # A stream that is no terminal has no width to ask; leave room for the whole line.
        console = Console(file=stream, force_terminal=True if forced else None, width=FORCED_WIDTH if forced else None)
        self._progress = Progress(
            BarColumn(bar_width=20), _Rows(), _Bytes(), _Rates(), _Endpoints(),
            TimeElapsedColumn(), console=console, redirect_stdout=False, redirect_stderr=False, transient=True,
        )
        self._task = self._progress.add_task(
            "query", total=total_rows if total_rows is not None and total_rows >= 0 else None,
            bytes=0, endpoints=endpoints, done=0,
        )

    def __enter__(self) -> QueryProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, rows: int, nbytes: int) -> None:
        if self._progress is None or self._task is None:
            return
        self._rows += rows
        self._bytes += nbytes
        self._progress.update(self._task, completed=self._rows, bytes=self._bytes)

    def endpoint_done(self, _state: EndpointState | None = None) -> None:
        if self._progress is None or self._task is None:
            return
        self._done += 1
        self._progress.update(self._task, done=self._done)

    def finish(self) -> None:
        """Mark the result complete: a pulsing bar becomes a full one."""
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, total=self._rows, completed=self._rows)
