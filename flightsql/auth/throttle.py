"""Logins that cannot freeze a node.

Checking a password costs an argon2 hash (64 MiB of memory and tens of milliseconds of
CPU, by design).  Unchecked, 32 threads of wrong passwords took a node from 394 MB to
2.4 GB and ``SELECT 1`` from 0.3 s to 5.5 s.  Two rules bound it:

- **Hashing is rationed.**  At most ``hashes`` password checks run at once on a node;
  a login that cannot get a turn within ``wait`` seconds (30) is refused RESOURCE_EXHAUSTED
  (try again), and costs nothing.  Bearer tokens, which every call after a login
  carries, are an HMAC and never wait.
- **Failures are counted.**  After ``failures`` wrong passwords within ``window``
  seconds for one user, or ``source_failures`` from one client address, further logins
  for that user (or from that address) are refused at once, without hashing, until the
  window has passed.  A right password costs exactly what a wrong one does (one hash),
  and a refusal costs none.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flightsql.errors import ResourceExhausted, Unauthenticated

#: how many users and addresses the counts remember (the oldest are forgotten first)
TRACKED = 10_000


@dataclass(frozen=True)
class LoginLimits:
    hashes: int = 2
    wait: float = 30.0
    failures: int = 10
    source_failures: int = 30
    window: float = 60.0

    def check(self) -> None:
        if self.hashes < 1 or self.failures < 1 or self.source_failures < 1:
            raise ValueError("login limits must be >= 1")
        if self.window <= 0 or self.wait < 0:
            raise ValueError("the login window must be > 0 and the wait >= 0")


class TooManyFailures(Unauthenticated):
    """Logins refused for a while after too many wrong passwords."""


class LoginThrottle:
    """Rations password checks and counts failed logins per user and per address."""

    def __init__(self, limits: LoginLimits = LoginLimits(), clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._turns = threading.BoundedSemaphore(limits.hashes)
        self._lock = threading.Lock()
        self._failed: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failed.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.limits.window:
            times.popleft()
        if not times:
            del self._failed[key]
        return times

    def _refuse_if_locked(self, user: str, source: str, now: float) -> None:
        with self._lock:
            for key, limit, who in (
                (("user", user), self.limits.failures, f"user {user!r}"),
                (("source", source), self.limits.source_failures, f"address {source}"),
            ):
                if not key[1]:
                    continue
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = max(1, round(times[0] + self.limits.window - now))
                    raise TooManyFailures(
                        f"too many failed logins for {who}: logins are refused for {wait} s more"
                    )

    def _failed_once(self, user: str, source: str, now: float) -> None:
        with self._lock:
            for key in (("user", user), ("source", source)):
                if not key[1]:
                    continue
                times = self._failed.setdefault(key, deque(maxlen=max(self.limits.failures,
                                                                        self.limits.source_failures)))
                times.append(now)
                self._failed.move_to_end(key)
            while len(self._failed) > TRACKED:
                self._failed.popitem(last=False)

    @contextmanager
    def _turn(self) -> Iterator[None]:
        if not self._turns.acquire(timeout=self.limits.wait):
            raise ResourceExhausted("too many logins at once on this node: try again in a moment")
        try:
            yield
        finally:
            self._turns.release()

    def check(self, user: str, source: str, verify: Callable[[], bool]) -> bool:
        """Run ``verify`` (one password check) if the user and address may try, in turn;
        count it if it fails."""
        self._refuse_if_locked(user, source, self._clock())
        with self._turn():
            ok = verify()
        if not ok:
            self._failed_once(user, source, self._clock())
        return ok


def peer_address(peer: str) -> str:
    """The client's address from gRPC's peer string (``ipv4:1.2.3.4:5678``,
    ``ipv6:[::1]:5678``, ``unix:...``), without the port."""
    from urllib.parse import unquote

    kind, _, rest = unquote(peer).partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer
