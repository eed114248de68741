"""Waiting for SIGINT or SIGTERM in a process full of threads.

Python runs signal handlers only in the main thread, and the kernel may deliver a
signal to any thread (gRPC's, Py4J's).  A main thread blocked in a long wait would
then never run the handler.  The signal's wakeup file descriptor is written by the
C-level handler whichever thread receives the signal, so the main thread blocks in
``select`` on it and wakes for every signal.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time


class StopSignals:
    """Install once; call :meth:`wait` to block until SIGINT or SIGTERM."""

    def __init__(self) -> None:
        self._received: list[int] = []  # appended by the handler, which runs in the main thread
        self._read, write = os.pipe()
        os.set_blocking(write, False)
        os.set_blocking(self._read, False)
        self._write = write
        self.install()

    def install(self) -> None:
        """(Re)install the handlers, for example after a library replaced them."""
        signal.set_wakeup_fd(self._write)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self._received.append(signum)

    @property
    def stopping(self) -> bool:
        return bool(self._received)

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until a signal not yet returned arrives: its number; None once ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._received:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            select.select([self._read], [], [], remaining)
            with contextlib.suppress(BlockingIOError):
                os.read(self._read, 512)
        return self._received.pop(0)
