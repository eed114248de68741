"""`flightsql cluster`: one command, a working cluster with a shared catalog, in local
mode and on a Spark standalone master with workers; Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flightsql.protocol import codec

from flightsql.protocol import commands as cmd
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

READY_TIMEOUT = 300


class ClusterCommand:
    """`flightsql cluster ...` in a child process, with the URIs it prints."""

    def __init__(self, work_dir: Path, *args: str) -> None:
        self.work_dir = work_dir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flightsql.cli", "cluster", "--port", "0", "--work-dir", str(work_dir),
             "--conf", "spark.driver.memory=768m", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.uris: list[str] = []
        self.master_ui: str | None = None
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if line.startswith(("  grpc://", "  grpc+tls://")):
                self.uris.append(line.strip())
            elif line.startswith("Spark master "):
                self.master_ui = line.rsplit("UI ", 1)[1].strip()

    def wait_ready(self, nodes: int, standalone: bool) -> None:
        wait_until(lambda: len(self.uris) >= nodes and (self.master_ui is not None or not standalone)
                   or self.process.poll() is not None, timeout=READY_TIMEOUT, what="the cluster to print its nodes")
        assert len(self.uris) == nodes, f"cluster printed {self.uris}: {self.lines}"

    def interrupt(self) -> int:
        """Ctrl-C, as in a terminal; the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(120)


def _processes_under(directory: Path) -> list[str]:
    """Processes whose command line names the directory or that run inside it
    (executors and their Python workers run in a worker's work directory)."""
    found = []
    root = str(directory.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if root in command or cwd.startswith(root):
            found.append(f"{entry.name}: {command[:200]}")
    return found


def _master_state(ui: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{ui}/json/", timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_cluster_command_shares_a_catalog_and_stops_cleanly(tmp_path: Path) -> None:
    import adbc_driver_flightsql.dbapi as flightsql

    cluster = ClusterCommand(tmp_path, "--nodes", "2", "--master", "local[1]", "--demo")
    try:
        cluster.wait_ready(2, standalone=False)
        assert cluster.master_ui is None  # no --workers: no Spark master
        with flightsql.connect(cluster.uris[0]) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE shared_catalog_t USING parquet AS SELECT id FROM range(100)")
        with flightsql.connect(cluster.uris[1]) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(id) FROM shared_catalog_t")
            assert cur.fetchall() == [(100, 4950)]
            cur.execute("SELECT count(*) FROM demo.trips")  # made once, by the first node
            assert cur.fetchall() == [(100000,)]
    finally:
        code = cluster.interrupt()
    assert code == 0
    assert _processes_under(tmp_path) == [], "processes of the cluster outlived it"


def test_standalone_tls_cluster_spreads_a_query_over_both_nodes_and_stops_cleanly(tmp_path: Path) -> None:
    """With --tls: clients reach the nodes over TLS, executors (launched by the workers) push
    over mutual TLS, and Spark's own RPC is authenticated and encrypted."""
    import adbc_driver_flightsql as adbc
    import adbc_driver_flightsql.dbapi as flightsql

    cluster = ClusterCommand(tmp_path, "--nodes", "2", "--workers", "2", "--worker-cores", "1",
                             "--executor-memory", "512m", "--tls")
    try:
        cluster.wait_ready(2, standalone=True)
        assert cluster.master_ui is not None
        state = _master_state(cluster.master_ui)
        assert state["aliveworkers"] == 2
        apps = sorted((app["name"], app["cores"], app["state"]) for app in state["activeapps"])
        assert apps == [("flightsql-node-0", 1, "RUNNING"), ("flightsql-node-1", 1, "RUNNING")]
        assert all(uri.startswith("grpc+tls://") for uri in cluster.uris), cluster.uris
        ca = (tmp_path / "tls" / "ca.pem").read_bytes()
        # the executors' JVMs run with Spark's RPC authentication and encryption
        executor_logs = list(tmp_path.glob("worker-*/work/app-*/*/stderr"))
        assert executor_logs and all("authentication enabled" in log.read_text() for log in executor_logs)

        # Through ADBC, as a user would: every row once.
        tls = {adbc.DatabaseOptions.TLS_ROOT_CERTS.value: ca.decode()}
        with flightsql.connect(cluster.uris[0], db_kwargs=tls) as conn, conn.cursor() as cur:
            cur.execute("SELECT id, id * 2 AS doubled FROM range(0, 100000, 1, 8)")
            table = cur.fetch_arrow_table()
        assert sorted(table.column("id").to_pylist()) == list(range(100000))
        assert table.column("doubled").to_pylist() == [2 * i for i in table.column("id").to_pylist()]

        # The endpoints: one per node, at that node, each with a share of the rows.
        query = codec.encode_command(cmd.CommandStatementQuery(query="SELECT id FROM range(0, 100000, 1, 8)"))
        info = flight.connect(cluster.uris[1], tls_root_certs=ca).get_flight_info(
            flight.FlightDescriptor.for_command(query))
        locations = sorted(e.locations[0].uri.decode() for e in info.endpoints)
        assert locations == sorted(cluster.uris)
        parts = [flight.connect(e.locations[0].uri.decode(), tls_root_certs=ca).do_get(e.ticket).read_all()
                 for e in info.endpoints]
        assert all(part.num_rows > 0 for part in parts), [part.num_rows for part in parts]
        assert sorted(pa.concat_tables(parts).column("id").to_pylist()) == list(range(100000))

        # Executors really ran on the workers: each worker holds an executor directory.
        assert all(any((tmp_path / f"worker-{i}" / "work").glob("app-*/*")) for i in range(2))
    finally:
        code = cluster.interrupt()
    assert code == 0
    assert _processes_under(tmp_path) == [], "processes of the cluster outlived it"


def test_cluster_refuses_more_nodes_than_worker_cores(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flightsql.cli", "cluster", "--nodes", "3", "--workers", "1", "--worker-cores", "2",
         "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "cannot give each of 3 nodes a core" in result.stderr
    assert not any(tmp_path.iterdir()), "nothing may start when the topology is refused"
