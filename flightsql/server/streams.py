"""Streams that cannot freeze a node.

Each DoGet and DoPut holds one of the public server's threads for as long as it is
open.  Sixty-four DoGets whose client never read once held every thread: the next
call, ``SELECT 1`` and logins included, got no answer.  Two rules bound them:

- **Streams per user.**  A user has at most ``per_user`` streams open on a node, and
  the node ``total``; past either, a new one is refused RESOURCE_EXHAUSTED at once.
  The server has threads for ``total`` streams and more besides, so short calls
  always find one.
- **A stalled stream ends.**  A DoGet whose client takes no message for ``stall``
  seconds (or a DoPut whose client sends none) is cancelled: its thread is free again,
  and the result stays readable with the same ticket until it expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import grpc

from flightsql.errors import ResourceExhausted

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class StreamLimits:
    per_user: int = 16
    total: int = 128
    stall: float = 60.0

    def check(self) -> None:
        if self.per_user < 1 or self.total < 1:
            raise ValueError("max-streams and max-streams-per-user must be >= 1")
        if self.stall <= 0:
            raise ValueError("stream-stall-timeout must be > 0")

    @property
    def threads(self) -> int:
        """Threads the public server needs: every stream, and room for short calls."""
        return self.total + 32


class _Stream:
    """One open stream: since when it waits on its client (None: it does not)."""

    __slots__ = ("context", "user", "waiting_since", "what")

    def __init__(self, context: grpc.ServicerContext, user: str, what: str) -> None:
        self.context = context
        self.user = user
        self.what = what
        self.waiting_since: float | None = None


class OpenStreams:
    """Counts each user's open streams and cancels those whose client stalls."""

    def __init__(self, limits: StreamLimits = StreamLimits(), clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        #: every open stream, watched for stalls
        self._streams: set[_Stream] = set()
        #: the streams counted against the limits, in all and per user
        self._counted = 0
        self._per_user: dict[str, int] = {}
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_stalls, name="stream-stalls", daemon=True)
        self._watch.start()

    def stop(self) -> None:
        self._stop.set()

    @contextmanager
    def open(self, user: str, context: grpc.ServicerContext, what: str, counted: bool = True) -> Iterator[_Stream]:
        """Hold one of ``user``'s streams while the body runs; refuse it past the limits.
        A stream not ``counted`` (a small result held whole) is only watched for stalls."""
        stream = _Stream(context, user, what)
        with self._lock:
            if counted:
                self._admit(user)
            self._streams.add(stream)
        try:
            yield stream
        finally:
            with self._lock:
                self._streams.discard(stream)
                if counted:
                    self._release(user)

    def _admit(self, user: str) -> None:
        mine = self._per_user.get(user, 0)
        if mine >= self.limits.per_user:
            raise ResourceExhausted(
                f"user {user!r} has {mine} streams open at this node, the most it allows "
                f"(--max-streams-per-user): finish reading one first")
        if self._counted >= self.limits.total:
            raise ResourceExhausted(
                f"this node has {self._counted} streams open, the most it allows (--max-streams): "
                "try again in a moment")
        self._per_user[user] = mine + 1
        self._counted += 1

    def _release(self, user: str) -> None:
        self._counted -= 1
        left = self._per_user[user] - 1
        if left:
            self._per_user[user] = left
        else:
            del self._per_user[user]

    def sent(self, stream: _Stream, messages: Iterator[T]) -> Iterator[T]:
        """``messages`` as a server stream yields them, timing each hand-over: gRPC resumes
        the generator once the client has taken the message before."""
        for message in messages:
            stream.waiting_since = self._clock()
            yield message
            stream.waiting_since = None

    def received(self, stream: _Stream, requests: Iterator[T]) -> Iterator[T]:
        """``requests`` of a client stream, timing each wait for the client's next message."""
        while True:
            stream.waiting_since = self._clock()
            try:
                message = next(requests)
            except StopIteration:
                return
            finally:
                stream.waiting_since = None
            yield message

    def open_count(self, user: str | None = None) -> int:
        with self._lock:
            return self._counted if user is None else self._per_user.get(user, 0)

    def _watch_stalls(self) -> None:
        period = min(1.0, self.limits.stall / 4)
        while not self._stop.wait(period):
            now = self._clock()
            with self._lock:
                stalled = [s for s in self._streams
                           if s.waiting_since is not None and now - s.waiting_since > self.limits.stall]
            for stream in stalled:
                log.warning("%s of user %s: its client took nothing for %.0f s; ending the stream (the result "
                            "stays readable with the same ticket)", stream.what, stream.user, self.limits.stall)
                stream.waiting_since = None
                stream.context.cancel()
