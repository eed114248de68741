"""Which queries run now and which wait: limits, a bounded queue, fairness between users.

A node runs at most ``running`` Spark jobs at once, at most ``per_user`` of them for
one user.  A query beyond the limits waits in a queue of at most ``queued`` queries,
for at most ``wait`` seconds; past either bound it is refused with
:class:`~flightmanager.errors.ServerBusy` (RESOURCE_EXHAUSTED), which says so and
when to try again.  When a slot frees, the waiting query of the user with the fewest
running queries goes first (the longest waiting among equals), so one user's burst
does not hold everyone else's queries back.

Pure bookkeeping: the manager calls it under its own lock and starts what it admits.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from flightmanager.errors import ServerBusy


@dataclass(frozen=True)
class Limits:
    #: Spark jobs running at once on this node, and for one user
    running: int = 8
    per_user: int = 4
    #: queries waiting for a slot, and how long one may wait (seconds)
    queued: int = 100
    wait: float = 60.0

    def check(self) -> None:
        if self.running < 1 or self.per_user < 1:
            raise ValueError("max-running and max-running-per-user must be >= 1")
        if self.queued < 0 or self.wait < 0:
            raise ValueError("max-queued and queue-wait must be >= 0")


@dataclass(frozen=True)
class Waiting:
    query_id: str
    user: str
    since: float


class Admission:
    def __init__(self, limits: Limits, node: str = "this node") -> None:
        self.limits = limits
        self.node = node
        self._running: dict[str, int] = {}
        self._queue: OrderedDict[str, Waiting] = OrderedDict()

    @property
    def running(self) -> int:
        return sum(self._running.values())

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def _may_run(self, user: str) -> bool:
        return self.running < self.limits.running and self._running.get(user, 0) < self.limits.per_user

    def full(self) -> bool:
        """Would a query of any user be refused now (every slot taken, the queue full)?"""
        return self.running >= self.limits.running and len(self._queue) >= self.limits.queued

    def offer(self, query_id: str, user: str, now: float) -> bool:
        """True: ``query_id`` may run now (its slot is taken); False: it waits.

        Raises ServerBusy when it could only wait and the queue is full."""
        # a free slot is taken at once: whoever waits is held by their own user's limit
        # (a waiting query that could run is started as soon as its slot frees)
        if self._may_run(user):
            self._running[user] = self._running.get(user, 0) + 1
            return True
        if len(self._queue) >= self.limits.queued:
            raise self._busy(f"{self.running} queries are running and {len(self._queue)} are waiting")
        self._queue[query_id] = Waiting(query_id, user, now)
        return False

    def release(self, user: str) -> list[str]:
        """A running query of ``user`` ended: the waiting queries that may start now
        (their slots are taken)."""
        left = self._running.get(user, 0) - 1
        if left > 0:
            self._running[user] = left
        else:
            self._running.pop(user, None)
        return self._admit()

    def withdraw(self, query_id: str) -> list[str]:
        """A waiting query ended (cancelled, closed) before it ran."""
        self._queue.pop(query_id, None)
        return self._admit()

    def _admit(self) -> list[str]:
        started: list[str] = []
        while self.running < self.limits.running:
            candidates = [w for w in self._queue.values() if self._running.get(w.user, 0) < self.limits.per_user]
            if not candidates:
                break
            # the user with the fewest running goes first; the queue's order breaks ties
            chosen = min(candidates, key=lambda w: self._running.get(w.user, 0))
            del self._queue[chosen.query_id]
            self._running[chosen.user] = self._running.get(chosen.user, 0) + 1
            started.append(chosen.query_id)
        return started

    def overdue(self, now: float) -> list[str]:
        """Waiting queries past the wait limit, taken out of the queue."""
        late = [w.query_id for w in self._queue.values() if now - w.since >= self.limits.wait]
        for query_id in late:
            del self._queue[query_id]
        return late

    def next_deadline(self) -> float | None:
        """When the longest-waiting query runs out of time (None: nothing waits)."""
        if not self._queue:
            return None
        return min(w.since for w in self._queue.values()) + self.limits.wait

    def position(self, query_id: str) -> int | None:
        """1 for the next query to start (users aside), None if ``query_id`` does not wait."""
        for index, waiting in enumerate(self._queue.values(), start=1):
            if waiting.query_id == query_id:
                return index
        return None

    def busy(self, how: str) -> ServerBusy:
        return self._busy(how)

    def _busy(self, how: str) -> ServerBusy:
        retry = max(1, min(60, int(self.limits.wait // 4) or 1))
        return ServerBusy(
            f"the server is busy: {how} on {self.node} (at most {self.limits.running} at once, "
            f"{self.limits.per_user} per user, {self.limits.queued} waiting); try again in about {retry} s"
        )
