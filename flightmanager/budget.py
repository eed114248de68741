"""Byte budgets shared by every result a node holds (memory, and spill disk)."""

from __future__ import annotations

import threading

from flightmanager.errors import BudgetExceeded


class ByteBudget:
    """A counter of bytes in use against a limit; thread-safe."""

    def __init__(self, name: str, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"{name} budget must be >= 0, got {limit}")
        self.name = name
        self.limit = limit
        self._used = 0
        self._peak = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    @property
    def peak(self) -> int:
        return self._peak

    def try_take(self, nbytes: int) -> bool:
        """Take ``nbytes`` if they fit; report whether they did."""
        with self._lock:
            if self._used + nbytes > self.limit:
                return False
            self._used += nbytes
            self._peak = max(self._peak, self._used)
            return True

    def take(self, nbytes: int) -> None:
        """Take ``nbytes`` or raise BudgetExceeded (RESOURCE_EXHAUSTED)."""
        if not self.try_take(nbytes):
            raise BudgetExceeded(
                f"{self.name} budget of {self.limit} bytes exceeded "
                f"({self._used} in use, {nbytes} more requested)"
            )

    def give_back(self, nbytes: int) -> None:
        with self._lock:
            self._used = max(0, self._used - nbytes)
