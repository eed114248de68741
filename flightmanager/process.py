"""Child processes that die with their parent, however the parent ends.

A node starts JVMs (an embedded ZooKeeper, the daemons of ``flightsql cluster``).  If
the node is killed with SIGKILL, nothing of it runs to stop them; Linux's parent-death
signal does: the kernel sends the child SIGKILL when the thread that started it exits.
Start such children from a thread that lives as long as the process (the main thread).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _parent_death_signal(parent: int) -> Callable[[], None]:
    def set_it() -> None:  # runs in the child between fork and exec
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)  # the parent died before the signal was set: nothing would stop this child

    return set_it


def dies_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` (None where Linux's prctl is absent)."""
    return _parent_death_signal(os.getpid()) if sys.platform.startswith("linux") else None
