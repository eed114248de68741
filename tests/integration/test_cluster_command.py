"""`flightsql cluster`: one command, a working cluster with a shared catalog."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

pytestmark = pytest.mark.integration


def test_cluster_command_shares_a_catalog_and_stops_cleanly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import adbc_driver_flightsql.dbapi as flightsql

    process = subprocess.Popen(
        [sys.executable, "-m", "flightsql.cli", "cluster", "--nodes", "2", "--port", "0",
         "--work-dir", str(tmp_path), "--conf", "spark.driver.memory=768m", "--master", "local[1]"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    uris: list[str] = []
    ready = threading.Event()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("  grpc://"):
                uris.append(line.strip())
                if len(uris) == 2:
                    ready.set()
        ready.set()

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        assert ready.wait(300) and len(uris) == 2, "cluster did not print two node URIs"
        with flightsql.connect(uris[0]) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE shared_catalog_t USING parquet AS SELECT id FROM range(100)")
        with flightsql.connect(uris[1]) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(id) FROM shared_catalog_t")
            assert cur.fetchall() == [(100, 4950)]
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(120)
    assert code == 0
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "processes of the cluster outlived it"
