"""The progress display of `flightsql query`: when it is drawn, and what it shows."""

from __future__ import annotations

import io
import re

from flightsql.client.progress import QueryProgress, shows

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_draws_only_on_a_terminal() -> None:
    assert shows("auto", _Terminal()) and not shows("auto", io.StringIO())
    assert shows("always", io.StringIO()) and not shows("never", _Terminal())


def test_hidden_display_writes_nothing() -> None:
    stream = io.StringIO()
    with QueryProgress("auto", endpoints=2, stream=stream) as progress:
        progress.advance(10, 80)
        progress.endpoint_done()
    assert stream.getvalue() == ""


def test_forced_display_shows_rows_bytes_rates_and_endpoints() -> None:
    stream = io.StringIO()
    with QueryProgress("always", endpoints=3, stream=stream) as progress:
        for _ in range(5):
            progress.advance(250_000, 2_000_000)
        progress.endpoint_done()
        progress.endpoint_done()
        progress.endpoint_done()
        progress.finish()
    text = ANSI.sub("", stream.getvalue())
    last = [line for line in text.splitlines() if "rows" in line][-1]
    assert "1,250,000 rows" in last
    assert "10.0 MB" in last
    assert re.search(r"[0-9.]+ [kMG]? ?rows/s, [0-9.]+ [kMG]?B/s", last)
    assert "3/3 endpoints" in last
