"""The committed *_pb2.py modules must match their .proto sources."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "dev" / "regen_protos.py"


@pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None,
    reason="grpc_tools (grpcio-tools, the 'dev' extra) is not installed, cannot run protoc",
)
def test_generated_code_is_current() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, (
        "generated protobuf code is stale; run `python dev/regen_protos.py`\n"
        + completed.stdout
        + completed.stderr
    )
