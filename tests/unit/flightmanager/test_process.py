"""Children started with dies_with_parent die when their parent is killed."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

import pytest

from flightmanager.process import dies_with_parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")

PARENT = """
import subprocess, sys, time
from flightmanager.process import dies_with_parent
child = subprocess.Popen(["sleep", "300"], preexec_fn=dies_with_parent())
print(child.pid, flush=True)
time.sleep(300)
"""


def test_a_child_dies_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    watch = os.pidfd_open(child)  # readable once the child has exited
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        poller = select.poll()
        poller.register(watch, select.POLLIN)
        assert poller.poll(10_000), "the child outlived its killed parent"
    finally:
        os.close(watch)

