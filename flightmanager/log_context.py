"""Which query a piece of work is about, so that every log line can say so.

A context variable holds the query id.  Work for a query sets it where it begins
(the job thread, a stream, a push, a watch on the query's record); a logging filter
(``flightsql.logs``) adds it to each record.  Threads do not inherit context
variables, and a server thread serves many queries, so the variable is always set
and reset within one call, never left behind on a pooled thread.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

QUERY: contextvars.ContextVar[str | None] = contextvars.ContextVar("flightmanager_query", default=None)


def current_query() -> str | None:
    """The id of the query the running code works for, if any."""
    return QUERY.get()


@contextmanager
def query_context(query_id: str | None) -> Iterator[None]:
    """Run the body as work for ``query_id`` (the previous value comes back after)."""
    token = QUERY.set(query_id)
    try:
        yield
    finally:
        QUERY.reset(token)


def iterate_in_query(query_id: str, items: Iterator[T]) -> Iterator[T]:
    """Yield from ``items``, each step running as work for ``query_id``.

    A generator has no context of its own: setting the variable inside one would leak
    into whatever the consuming thread does next.  Each step runs in a private copy
    of the context instead, and so does the iterator's clean-up when it is closed.
    """
    context = contextvars.copy_context()
    context.run(QUERY.set, query_id)
    try:
        while True:
            try:
                item = context.run(next, items)
            except StopIteration:
                return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            context.run(close)
