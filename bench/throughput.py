"""Throughput and latency of the Flight SQL node against Spark's own result paths.

Measures, on the same machine and the same generated data:

* rows/s of ``SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM range(N)``
  read (a) from a Flight SQL node with ADBC as a stream of record batches,
  (b) with ``spark.sql(sql).toArrow()`` in a local SparkSession, and
  (c) with ``spark.sql(sql).toArrow()`` through a Spark Connect server;
* p50/p90 latency of ``SELECT 1`` round trips against the node and Spark Connect.

Every system runs alone (one after the other), with ``local[*]`` and the same driver
memory. Each measurement runs in its own client process with a deadline; every
process the benchmark starts is stopped at the end, also on errors.

Usage: python bench/throughput.py [--rows 10000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
MARK = "[bench] "

THROUGHPUT_SQL = "SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM range({rows})"
LATENCY_SQL = "SELECT 1"
LATENCY_WARMUPS = 5
LATENCY_ITERATIONS = 50

DRIVER_MEMORY = "4g"
MASTER = "local[*]"
# Applied identically to the node, the local SparkSession and the Spark Connect server.
COMMON_CONF = {
    "spark.driver.memory": DRIVER_MEMORY,
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Guard only: lets larger --rows values collect to the driver in the Spark baselines.
    "spark.driver.maxResultSize": "0",
}

#: share of the machine used by other processes above which a measurement is flagged
CONTENDED_SHARE = 0.05

TARGET_VS_INPROC = 0.8
TARGET_VS_CONNECT = 1.0


# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def progress(message: str) -> None:
    """Progress line from a client process; the orchestrator echoes these."""
    print(MARK + message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(seconds: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
    }


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def group_jvm_heaps(pgid: int) -> list[str]:
    """-Xmx values of the java processes in a process group (read from /proc)."""
    heaps: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Field 5 (pgrp) follows the parenthesised command name.
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if not argv or not argv[0].endswith(b"java"):
            continue
        heaps.extend(a.decode()[4:] for a in argv if a.startswith(b"-Xmx"))
    return heaps


class CpuMonitor:
    """Samples /proc to split CPU time into ours (this process and its descendants) and foreign.

    Foreign CPU during a measurement means something else competed for the cores, which
    makes that measurement unreliable on a small machine.
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.root = os.getpid()
        self.interval = interval
        self.tick = os.sysconf("SC_CLK_TCK")
        self.ours = 0.0
        self.foreign = 0.0
        self._prev: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sample(count=False)
        self._thread = threading.Thread(target=self._loop, name="cpu-monitor", daemon=True)
        self._thread.start()

    def _sample(self, count: bool = True) -> None:
        ticks: dict[int, int] = {}
        parent: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            pid = int(entry.name)
            parent[pid] = int(fields[1])
            ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime

        def is_ours(pid: int) -> bool:
            for _ in range(64):
                if pid == self.root:
                    return True
                if pid <= 1 or pid not in parent:
                    return False
                pid = parent[pid]
            return False

        ours = foreign = 0
        for pid, t in ticks.items():
            delta = t - self._prev.get(pid, 0)
            if delta <= 0:
                continue
            if is_ours(pid):
                ours += delta
            else:
                foreign += delta
        with self._lock:
            if count:
                self.ours += ours / self.tick
                self.foreign += foreign / self.tick
            self._prev = ticks

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except Exception:
                pass

    def snapshot(self) -> tuple[float, float, float]:
        with self._lock:
            return time.monotonic(), self.ours, self.foreign

    def since(self, start: tuple[float, float, float]) -> dict[str, float]:
        now = self.snapshot()
        wall = now[0] - start[0]
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        foreign = now[2] - start[2]
        return {
            "wall_seconds": round(wall, 2),
            "our_cpu_seconds": round(now[1] - start[1], 2),
            "foreign_cpu_seconds": round(foreign, 2),
            "foreign_share_of_machine": round(foreign / (wall * cores), 4) if wall > 0 else 0.0,
        }

    def wait_idle(self, timeout: float, window: float = 5.0, threshold: float = 0.10) -> dict[str, Any]:
        """Wait (at most `timeout` seconds) for a window in which other processes use < threshold of the machine."""
        started = time.monotonic()
        share = 0.0
        announced = False
        while True:
            start = self.snapshot()
            time.sleep(window)
            share = self.since(start)["foreign_share_of_machine"]
            waited = time.monotonic() - started
            if share < threshold:
                return {"idle": True, "waited_seconds": round(waited, 1), "foreign_share": share}
            if waited + window > timeout:
                log(f"  machine still busy ({share:.0%} used by other processes) after {waited:.0f}s; measuring anyway")
                return {"idle": False, "waited_seconds": round(waited, 1), "foreign_share": share}
            if not announced:
                log(f"  other processes use {share:.0%} of the machine; waiting up to {timeout:.0f}s for it to calm down")
                announced = True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


# --------------------------------------------------------------------------- processes


class Managed:
    """A child process in its own process group whose merged output goes to a log file."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready: str | None = None,
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self.ready_re = re.compile(ready) if ready else None
        self.ready_match: re.Match[str] | None = None
        self._ready = threading.Event()
        self._log = open(log_path, "w", encoding="utf-8", errors="replace")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(cwd) if cwd else None,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        self.pgid = self.proc.pid  # start_new_session: the child leads its own group
        self._reader = threading.Thread(target=self._pump, name=f"log-{name}", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            if line.startswith(MARK):
                log(f"  {self.name}: {line[len(MARK):].rstrip()}")
            if self.ready_re is not None and not self._ready.is_set():
                match = self.ready_re.search(line)
                if match:
                    self.ready_match = match
                    self._ready.set()

    def wait_ready(self, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.2):
                assert self.ready_match is not None
                return self.ready_match
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was ready\n{self.tail()}")
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s\n{self.tail()}")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise TimeoutError(f"{self.name} did not finish within {timeout:.0f}s (killed)\n{self.tail()}") from None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    | " + line for line in text[-lines:])

    def kill_group(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the leader, give it `grace` seconds, then SIGKILL whatever is left of the group."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"  {self.name}: still running {grace:.0f}s after SIGTERM, killing its process group")
            except ProcessLookupError:
                pass
        self.kill_group()  # children (JVMs, Python workers) that outlived the leader
        self._reader.join(5)
        self._log.close()


class Registry:
    """Every process the benchmark started, stopped in reverse order."""

    def __init__(self) -> None:
        self.procs: list[Managed] = []

    def add(self, proc: Managed) -> Managed:
        self.procs.append(proc)
        return proc

    def stop(self, proc: Managed, grace: float = 30.0) -> None:
        proc.stop(grace)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            try:
                proc.stop(grace=15.0)
            except Exception as exc:  # keep stopping the others
                log(f"  could not stop {proc.name}: {exc}")


# --------------------------------------------------------------------------- clients
# Each client runs in its own process: fresh interpreter, own memory, hard deadline.


@contextlib.contextmanager
def bench_run(prefix: str) -> Iterator[tuple[Registry, CpuMonitor, Path]]:
    """One benchmark run: SIGTERM, SIGHUP and SIGINT end it as an exit does, results have
    their directory, and every process it starts (in the registry) is stopped at the end."""

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    registry, monitor = Registry(), CpuMonitor()
    try:
        yield registry, monitor, Path(tempfile.mkdtemp(prefix=prefix))
    finally:
        registry.stop_all()
        monitor.stop()


def _timed_runs(
    name: str, warmups: int, runs: int, once: Callable[[bool], dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    warm = {}
    for i in range(warmups):
        warm = once(True)
        progress(f"{name} warm-up {i + 1}: {warm['seconds']:.3f}s")
    results = []
    for i in range(runs):
        gc.collect()
        r = once(False)
        results.append(r)
        progress(f"{name} run {i + 1}/{runs}: {r['seconds']:.3f}s")
    return results, warm


def _check_rows(rows: int, expected: int, what: str) -> None:
    if rows != expected:
        raise RuntimeError(f"{what}: got {rows} rows, expected {expected}")


def _check_sum(doubled_sum: int, rows: int, what: str) -> None:
    expected = rows * (rows - 1)
    if doubled_sum != expected:
        raise RuntimeError(f"{what}: sum(doubled) = {doubled_sum}, expected {expected}")


def _latency(name: str, once: Callable[[], None]) -> dict[str, Any]:
    for _ in range(LATENCY_WARMUPS):
        once()
    samples = []
    for _ in range(LATENCY_ITERATIONS):
        t0 = time.perf_counter()
        once()
        samples.append(time.perf_counter() - t0)
    out = {
        "iterations": LATENCY_ITERATIONS,
        "warmups": LATENCY_WARMUPS,
        "p50": percentile(samples, 50),
        "p90": percentile(samples, 90),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
    }
    progress(f"{name} SELECT 1: p50 {out['p50'] * 1e3:.2f} ms, p90 {out['p90'] * 1e3:.2f} ms")
    return out


def client_adbc(uri: str, rows: int, runs: int) -> dict[str, Any]:
    import pyarrow.compute as pc
    from adbc_driver_flightsql import dbapi

    sql = THROUGHPUT_SQL.format(rows=rows)
    conn = dbapi.connect(uri, autocommit=True)
    try:
        cur = conn.cursor()

        def once(check: bool) -> dict[str, Any]:
            t0 = time.perf_counter()
            cur.execute(sql)
            t_exec = time.perf_counter()
            reader = cur.fetch_record_batch()
            t_first = None
            count = batches = nbytes = 0
            doubled_sum = 0
            for batch in reader:
                if t_first is None:
                    t_first = time.perf_counter()
                count += batch.num_rows
                batches += 1
                nbytes += batch.nbytes
                if check:
                    doubled_sum += pc.sum(batch.column(1)).as_py() or 0
            t_end = time.perf_counter()
            _check_rows(count, rows, "ADBC")
            if check:
                names = reader.schema.names
                if names != ["id", "doubled", "label"]:
                    raise RuntimeError(f"ADBC: unexpected columns {names}")
                _check_sum(doubled_sum, rows, "ADBC")
            return {
                "seconds": t_end - t0,
                "execute_seconds": t_exec - t0,
                "first_batch_seconds": (t_first if t_first is not None else t_end) - t0,
                "batches": batches,
                "arrow_bytes": nbytes,
            }

        results, warm = _timed_runs("ADBC", 1, runs, once)

        def select_one() -> None:
            cur.execute(LATENCY_SQL)
            table = cur.fetch_arrow_table()
            if table.num_rows != 1:
                raise RuntimeError("ADBC: SELECT 1 did not return one row")

        latency = _latency("ADBC", select_one)
        cur.close()
    finally:
        conn.close()
    return {"warmup": warm, "runs": results, "latency": latency}


def _spark_arrow_once(spark: Any, sql: str, rows: int, what: str) -> Callable[[bool], dict[str, Any]]:
    import pyarrow.compute as pc

    def once(check: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        table = spark.sql(sql).toArrow()
        t_end = time.perf_counter()
        _check_rows(table.num_rows, rows, what)
        out = {"seconds": t_end - t0, "arrow_bytes": table.nbytes}
        if check:
            if table.column_names != ["id", "doubled", "label"]:
                raise RuntimeError(f"{what}: unexpected columns {table.column_names}")
            _check_sum(pc.sum(table.column("doubled")).as_py() or 0, rows, what)
        del table
        return out

    return once


def client_connect(uri: str, rows: int, runs: int) -> dict[str, Any]:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(uri).getOrCreate()
    try:
        sql = THROUGHPUT_SQL.format(rows=rows)
        results, warm = _timed_runs("Spark Connect", 1, runs, _spark_arrow_once(spark, sql, rows, "Spark Connect"))

        def select_one() -> None:
            if spark.sql(LATENCY_SQL).toArrow().num_rows != 1:
                raise RuntimeError("Spark Connect: SELECT 1 did not return one row")

        latency = _latency("Spark Connect", select_one)
        version = spark.version
    finally:
        try:
            spark.stop()
        except Exception:
            pass
    return {"warmup": warm, "runs": results, "latency": latency, "server_spark_version": version}


def client_inproc(rows: int, runs: int) -> dict[str, Any]:
    from pyspark.sql import SparkSession

    # A fresh process: builder settings reach spark-submit, so spark.driver.memory
    # sizes the JVM this session launches.
    builder = SparkSession.builder.master(MASTER).appName("bench-inprocess-toarrow")
    for key, value in COMMON_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    try:
        spark.sparkContext.setLogLevel("WARN")
        heap = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()  # type: ignore[union-attr]
        sql = THROUGHPUT_SQL.format(rows=rows)
        results, warm = _timed_runs("in-process", 1, runs, _spark_arrow_once(spark, sql, rows, "in-process"))
        heaps = group_jvm_heaps(os.getpgid(0))
    finally:
        spark.stop()
    return {"warmup": warm, "runs": results, "jvm_max_heap_bytes": heap, "jvm_xmx": heaps}


def client_main(args: argparse.Namespace) -> int:
    if args.client == "adbc":
        out = client_adbc(args.uri, args.rows, args.runs)
    elif args.client == "connect":
        out = client_connect(args.uri, args.rows, args.runs)
    elif args.client == "inproc":
        out = client_inproc(args.rows, args.runs)
    else:
        raise SystemExit(f"unknown client {args.client}")
    Path(args.out).write_text(json.dumps(out))
    return 0


# --------------------------------------------------------------------------- orchestration


def run_client(
    registry: Registry,
    monitor: CpuMonitor,
    tmp: Path,
    kind: str,
    rows: int,
    runs: int,
    timeout: float,
    uri: str = "",
    idle_timeout: float = 0.0,
    retries: int = 0,
) -> dict[str, Any]:
    """Run one client; repeat it (up to `retries` times) if other processes competed for the CPUs.

    Of several attempts the one with the least competition is kept.
    """
    attempts: list[dict[str, Any]] = []
    for attempt in range(retries + 1):
        result = _run_client_once(registry, monitor, tmp, kind, rows, runs, timeout, uri, idle_timeout)
        attempts.append(result)
        if result["cpu"]["foreign_share_of_machine"] <= CONTENDED_SHARE:
            break
        if attempt < retries:
            log("  repeating this measurement on a quieter machine")
    kept = min(attempts, key=lambda r: r["cpu"]["foreign_share_of_machine"])
    if len(attempts) > 1:
        log(f"  keeping attempt {attempts.index(kept) + 1} of {len(attempts)} (least competition)")
    kept["discarded_attempts"] = [
        {"cpu": r["cpu"], "runs_seconds": [run["seconds"] for run in r["runs"]]} for r in attempts if r is not kept
    ]
    return kept


def _run_client_once(
    registry: Registry,
    monitor: CpuMonitor,
    tmp: Path,
    kind: str,
    rows: int,
    runs: int,
    timeout: float,
    uri: str,
    idle_timeout: float,
) -> dict[str, Any]:
    out = tmp / f"client-{kind}.json"
    out.unlink(missing_ok=True)
    cmd = [
        sys.executable, str(Path(__file__).resolve()),
        "--client", kind, "--rows", str(rows), "--runs", str(runs), "--out", str(out),
    ]
    if uri:
        cmd += ["--uri", uri]
    env = dict(os.environ)
    env.pop("SPARK_REMOTE", None)
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    idle = monitor.wait_idle(idle_timeout) if idle_timeout > 0 else None
    start = monitor.snapshot()
    proc = registry.add(Managed(f"client-{kind}", cmd, tmp / f"client-{kind}.log", env=env, cwd=tmp))
    try:
        code = proc.wait(timeout)
        if code != 0:
            raise RuntimeError(f"client {kind} failed with exit code {code}\n{proc.tail()}")
    finally:
        registry.stop(proc, grace=5.0)
    result = json.loads(out.read_text())
    result["cpu"] = cpu = monitor.since(start)
    cpu["before"] = idle
    if cpu["foreign_share_of_machine"] > CONTENDED_SHARE:
        log(
            f"  WARNING: other processes used {cpu['foreign_cpu_seconds']:.1f} CPU-s"
            f" ({cpu['foreign_share_of_machine']:.0%} of the machine) during this measurement"
        )
    return result


def spill_usage(spill_dir: Path) -> dict[str, int]:
    """Results of the node that went (at least partly) to disk, and their bytes."""
    queries = bytes_ = 0
    if spill_dir.is_dir():
        for query_dir in spill_dir.iterdir():
            if query_dir.is_dir():
                sizes = [f.stat().st_size for f in query_dir.rglob("*") if f.is_file()]
                if sizes:
                    queries += 1
                    bytes_ += sum(sizes)
    return {"spilled_results": queries, "spilled_bytes": bytes_}


def start_node(registry: Registry, tmp: Path, timeout: float) -> tuple[Managed, str]:
    work = tmp / "node-work"
    cmd = [
        str(Path(sys.executable).with_name("flightsql")), "serve",
        "--port", "0", "--work-dir", str(work), "--master", MASTER,
    ]
    for key, value in COMMON_CONF.items():
        cmd += ["--conf", f"{key}={value}"]
    env = dict(os.environ)
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    node = registry.add(
        Managed("node", cmd, tmp / "node.log", env=env, cwd=tmp,
                ready=r"ready: Flight SQL at (grpc://127\.0\.0\.1:\d+)")
    )
    t0 = time.perf_counter()
    uri = node.wait_ready(timeout).group(1)
    log(f"  node ready at {uri} after {time.perf_counter() - t0:.1f}s")
    return node, uri


def start_spark_connect(registry: Registry, tmp: Path, timeout: float) -> tuple[Managed, str]:
    """Spark Connect server from the pip pyspark distribution (spark-connect_*.jar ships in its jars).

    bin/spark-submit goes through Spark's launcher, which turns spark.driver.memory into
    -Xmx and adds the JDK 17 --add-opens flags, exactly as for a regular Spark distribution.
    """
    home = pyspark_home()
    if not list((home / "jars").glob("spark-connect_*.jar")):
        raise RuntimeError(f"no spark-connect jar in {home / 'jars'}")
    port = free_port()
    cmd = [
        "bash", str(home / "bin" / "spark-submit"),
        "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--name", "bench-spark-connect",
        "--master", MASTER,
    ]
    for key, value in COMMON_CONF.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd += [
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", f"spark.sql.warehouse.dir={tmp / 'connect-warehouse'}",
        "--conf", f"spark.driver.extraJavaOptions=-Dderby.system.home={tmp / 'connect-derby'}",
        "spark-internal",
    ]
    # Spark logs at WARN, as the node and the local session do (they call setLogLevel("WARN"));
    # only the server's own start-up line stays at INFO.
    conf_dir = tmp / "connect-conf"
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "log4j2.properties").write_text(CONNECT_LOG4J2)
    env = dict(os.environ)
    env["SPARK_HOME"] = str(home)
    env["SPARK_CONF_DIR"] = str(conf_dir)
    for key in ("SPARK_REMOTE", "PYSPARK_SUBMIT_ARGS"):
        env.pop(key, None)
    server = registry.add(
        Managed("spark-connect", cmd, tmp / "spark-connect.log", env=env, cwd=tmp,
                ready=r"Spark Connect server started at:? *(\S+)")
    )
    t0 = time.perf_counter()
    server.wait_ready(timeout)
    log(f"  Spark Connect ready on 127.0.0.1:{port} after {time.perf_counter() - t0:.1f}s")
    return server, f"sc://127.0.0.1:{port}"


CONNECT_LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.server.name = org.apache.spark.sql.connect.service.SparkConnectServer
logger.server.level = info
"""


def java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        return (out.stderr or out.stdout).splitlines()[0].strip()
    except Exception as exc:
        return f"unknown ({exc})"


def machine_info() -> dict[str, Any]:
    import pyarrow
    import pyspark

    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
        "pyarrow": pyarrow.__version__,
        "java": java_version(),
    }
    try:
        import adbc_driver_flightsql

        info["adbc_driver_flightsql"] = adbc_driver_flightsql.__version__
    except Exception:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_total_kib"] = int(line.split()[1])
                break
    except OSError:
        pass
    return info


def throughput_summary(client: dict[str, Any], rows: int) -> dict[str, Any]:
    seconds = [r["seconds"] for r in client["runs"]]
    s = summarize(seconds)
    out: dict[str, Any] = {
        "seconds": s,
        "rows_per_second": {
            "median": rows / s["median"],
            "best": rows / s["min"],
            "worst": rows / s["max"],
        },
        "arrow_bytes": client["runs"][0].get("arrow_bytes"),
        "warmup_seconds": client["warmup"]["seconds"],
        "runs_seconds": seconds,
    }
    if "first_batch_seconds" in client["runs"][0]:
        out["execute_seconds"] = summarize([r["execute_seconds"] for r in client["runs"]])
        out["first_batch_seconds"] = summarize([r["first_batch_seconds"] for r in client["runs"]])
        out["batches"] = client["runs"][0]["batches"]
    return out


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:,.2f} M"


def print_report(report: dict[str, Any]) -> None:
    rows = report["rows"]
    tp = report["throughput"]
    lat = report["latency"]
    print()
    print(f"Throughput: {THROUGHPUT_SQL.format(rows=f'{rows:,}')}")
    print(f"  {report['runs']} timed runs after 1 warm-up; rows/s from the median time\n")
    header = f"  {'system':<34} {'median s':>9} {'min s':>8} {'max s':>8} {'rows/s (median)':>16} {'MB/s':>8}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    labels = {
        "flightsql_adbc": "Flight SQL node, ADBC stream",
        "spark_inprocess_toarrow": "Spark in-process toArrow()",
        "spark_connect_toarrow": "Spark Connect toArrow()",
    }
    for key, label in labels.items():
        t = tp.get(key)
        if t is None:
            print(f"  {label:<34} {'failed':>9}")
            continue
        s = t["seconds"]
        mbps = (t["arrow_bytes"] / s["median"] / 1e6) if t.get("arrow_bytes") else None
        print(
            f"  {label:<34} {s['median']:>9.3f} {s['min']:>8.3f} {s['max']:>8.3f}"
            f" {fmt_rate(t['rows_per_second']['median']):>16} {('-' if mbps is None else f'{mbps:,.0f}'):>8}"
        )
    ours = tp.get("flightsql_adbc")
    if ours and "first_batch_seconds" in ours:
        print(
            f"\n  Flight SQL node detail (medians): execute() returned after {ours['execute_seconds']['median']:.3f}s,"
            f" first batch after {ours['first_batch_seconds']['median']:.3f}s,"
            f" last batch after {ours['seconds']['median']:.3f}s; {ours['batches']} batches"
        )

    print(f"\nLatency: {LATENCY_SQL!r}, execute + fetch all, {LATENCY_ITERATIONS} iterations after {LATENCY_WARMUPS} warm-ups\n")
    header = f"  {'system':<34} {'p50 ms':>9} {'p90 ms':>9} {'min ms':>9} {'max ms':>9}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for key, label in (("flightsql_adbc", "Flight SQL node, ADBC"), ("spark_connect", "Spark Connect")):
        l = lat.get(key)
        if l is None:
            print(f"  {label:<34} {'failed':>9}")
            continue
        print(f"  {label:<34} {l['p50'] * 1e3:>9.2f} {l['p90'] * 1e3:>9.2f} {l['min'] * 1e3:>9.2f} {l['max'] * 1e3:>9.2f}")

    spill = report.get("flightsql_node_spill") or {}
    if spill.get("spilled_results"):
        print(
            f"\n  The node spilled {spill['spilled_results']} results ({spill['spilled_bytes'] / 1e6:,.0f} MB) to disk:"
            " results stay held after they are read, until their TTL"
        )
    contention = report.get("contention") or {}
    if contention:
        names = {"adbc": "node", "inproc": "in-process", "connect": "Spark Connect"}
        parts = [
            f"{names.get(k, k)} {v['foreign_share_of_machine']:.0%}" for k, v in contention.items()
        ]
        print("\nCPU used by other processes during each measurement (share of the machine): " + ", ".join(parts))
        if any(v["foreign_share_of_machine"] > CONTENDED_SHARE for v in contention.values()):
            print("  WARNING: the machine was not idle; treat the affected figures with care")

    print("\nRatios (from medians; in brackets: from each system's best run)\n")
    for r in report["ratios"].values():
        value = "-" if r["value"] is None else f"{r['value']:.2f}"
        best = r.get("value_best_runs")
        best_text = f"({best:.2f})" if best is not None else ""
        verdict = "n/a" if r["met"] is None else ("met" if r["met"] else "NOT met")
        print(f"  {r['description']:<50} {value:>6} {best_text:>7}   target {r['target']:<7} {verdict}")
    print()


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def build_ratios(tp: dict[str, Any], lat: dict[str, Any]) -> dict[str, Any]:
    def rps(key: str, which: str = "median") -> float | None:
        return tp[key]["rows_per_second"][which] if key in tp else None

    def p50(key: str) -> float | None:
        return lat[key]["p50"] if key in lat else None

    vs_inproc = ratio(rps("flightsql_adbc"), rps("spark_inprocess_toarrow"))
    vs_connect = ratio(rps("flightsql_adbc"), rps("spark_connect_toarrow"))
    best_vs_inproc = ratio(rps("flightsql_adbc", "best"), rps("spark_inprocess_toarrow", "best"))
    best_vs_connect = ratio(rps("flightsql_adbc", "best"), rps("spark_connect_toarrow", "best"))
    lat_ratio = ratio(p50("flightsql_adbc"), p50("spark_connect"))
    return {
        "throughput_ours_vs_inprocess": {
            "description": "rows/s: Flight SQL node / in-process toArrow()",
            "value": vs_inproc, "target": f">= {TARGET_VS_INPROC}",
            "met": None if vs_inproc is None else vs_inproc >= TARGET_VS_INPROC,
            "value_best_runs": best_vs_inproc,
        },
        "throughput_ours_vs_connect": {
            "description": "rows/s: Flight SQL node / Spark Connect toArrow()",
            "value": vs_connect, "target": f">= {TARGET_VS_CONNECT}",
            "met": None if vs_connect is None else vs_connect >= TARGET_VS_CONNECT,
            "value_best_runs": best_vs_connect,
        },
        "select1_p50_ours_vs_connect": {
            "description": "SELECT 1 p50: Flight SQL node / Spark Connect",
            "value": lat_ratio, "target": "<= 1.0",
            "met": None if lat_ratio is None else lat_ratio <= 1.0,
        },
    }


def orchestrate(args: argparse.Namespace) -> int:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    started = time.time()
    registry = Registry()
    monitor = CpuMonitor()
    tmp = Path(tempfile.mkdtemp(prefix="flightsql-bench-"))
    errors: dict[str, str] = {}
    node_spill: dict[str, int] = {}
    clients: dict[str, dict[str, Any]] = {}
    jvm_heaps: dict[str, list[str]] = {}
    client_timeout = args.client_timeout or (180.0 + (args.runs + 1) * max(60.0, args.rows / 1e5))

    def on_signal(signum: int, _frame: Any) -> None:
        log(f"interrupted ({signal.Signals(signum).name}): stopping everything this benchmark started")
        raise SystemExit(128 + signum)

    # Also SIGINT: a shell may start background jobs with it ignored.
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        info = machine_info()
        log(f"machine: {info['nproc']} cores, Python {info['python']}, pyspark {info['pyspark']}, pyarrow {info['pyarrow']}")
        log(f"rows {args.rows:,}, runs {args.runs}, driver memory {DRIVER_MEMORY}, master {MASTER}; scratch {tmp}")

        # 1. The Flight SQL node through ADBC.
        log("[1/3] Flight SQL node (ADBC)")
        node = None
        try:
            node, uri = start_node(registry, tmp, args.start_timeout)
            jvm_heaps["flightsql_node"] = group_jvm_heaps(node.pgid)
            clients["adbc"] = run_client(
                registry, monitor, tmp, "adbc", args.rows, args.runs, client_timeout,
                uri=uri, idle_timeout=args.idle_timeout, retries=args.contention_retries,
            )
            node_spill = spill_usage(tmp / "node-work" / "spill")
            if node_spill["spilled_results"]:
                log(
                    f"  note: {node_spill['spilled_results']} results of the node spilled"
                    f" {node_spill['spilled_bytes'] / 1e6:,.0f} MB to disk"
                )
        except Exception as exc:
            errors["flightsql_node"] = str(exc)
            log(f"  FAILED: {exc}")
        finally:
            if node is not None:
                registry.stop(node)
                if node.proc.returncode not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
                    log(f"  note: node exited with {node.proc.returncode} after SIGTERM")

        # 2. Spark in-process toArrow() (its own process and JVM).
        log("[2/3] Spark in-process toArrow()")
        try:
            clients["inproc"] = run_client(
                registry, monitor, tmp, "inproc", args.rows, args.runs, client_timeout,
                idle_timeout=args.idle_timeout, retries=args.contention_retries,
            )
            jvm_heaps["spark_inprocess"] = clients["inproc"].get("jvm_xmx", [])
        except Exception as exc:
            errors["spark_inprocess"] = str(exc)
            log(f"  FAILED: {exc}")

        # 3. Spark Connect.
        log("[3/3] Spark Connect")
        server = None
        try:
            server, sc_uri = start_spark_connect(registry, tmp, args.start_timeout)
            jvm_heaps["spark_connect_server"] = group_jvm_heaps(server.pgid)
            clients["connect"] = run_client(
                registry, monitor, tmp, "connect", args.rows, args.runs, client_timeout,
                uri=sc_uri, idle_timeout=args.idle_timeout, retries=args.contention_retries,
            )
        except Exception as exc:
            errors["spark_connect"] = str(exc)
            log(f"  FAILED: {exc}")
        finally:
            if server is not None:
                registry.stop(server)

        throughput: dict[str, Any] = {}
        latency: dict[str, Any] = {}
        if "adbc" in clients:
            throughput["flightsql_adbc"] = throughput_summary(clients["adbc"], args.rows)
            latency["flightsql_adbc"] = clients["adbc"]["latency"]
        if "inproc" in clients:
            throughput["spark_inprocess_toarrow"] = throughput_summary(clients["inproc"], args.rows)
        if "connect" in clients:
            throughput["spark_connect_toarrow"] = throughput_summary(clients["connect"], args.rows)
            latency["spark_connect"] = clients["connect"]["latency"]

        report = {
            "benchmark": "throughput",
            "timestamp": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "duration_seconds": None,
            "rows": args.rows,
            "runs": args.runs,
            "warmups": 1,
            "query": THROUGHPUT_SQL.format(rows=args.rows),
            "latency_query": LATENCY_SQL,
            "settings": {"master": MASTER, "conf": COMMON_CONF, "jvm_xmx": jvm_heaps},
            "machine": info,
            "throughput": throughput,
            "latency": latency,
            "ratios": build_ratios(throughput, latency),
            "flightsql_node_spill": node_spill,
            "contention": {name: c["cpu"] for name, c in clients.items()},
            "errors": errors,
        }
        report["duration_seconds"] = round(time.time() - started, 1)
        print_report(report)
        out = RESULTS_DIR / f"throughput-{stamp}.json"
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {out}")
        if errors:
            log("some measurements failed:\n" + "\n".join(f"  {k}: {v}" for k, v in errors.items()))
        return 1 if errors else 0
    finally:
        registry.stop_all()
        monitor.stop()
        if args.keep_scratch:
            log(f"scratch kept at {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of range(N) (default: 10,000,000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up (default: 5)")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds a server may take to start")
    parser.add_argument("--client-timeout", type=float, default=0.0,
                        help="seconds one system's measurements may take (default: from --rows and --runs)")
    parser.add_argument("--idle-timeout", type=float, default=300.0,
                        help="seconds to wait, before each measurement, for other processes to leave"
                             " the CPUs alone (0: do not wait)")
    parser.add_argument("--contention-retries", type=int, default=1,
                        help="times to repeat a measurement during which other processes used more than"
                             f" {CONTENDED_SHARE * 100:.0f}%% of the CPUs (default: 1)")
    parser.add_argument("--keep-scratch", action="store_true", help="keep the scratch folder (server and client logs)")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.runs < 1:
        parser.error("--rows and --runs must be positive")
    if args.client:
        return client_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
