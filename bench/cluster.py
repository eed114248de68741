"""Cluster benchmark: a result spread over 1, 2 and 3 nodes, and a result larger than the heap.

In one run:

1. Throughput of ``SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label
   FROM range(0, N, 1, 12)`` through ``flightsql cluster --nodes K`` for K = 1, 2, 3:
   median rows/s of an ADBC client streaming the result (all endpoints in parallel),
   and each node's share of the rows and bytes (every endpoint read on its own with
   pyarrow).  All nodes share one machine, so this shows the overhead of spreading a
   result and how evenly it is spread, not scale-out.
2. A result several times the driver heap: one node with a 1 GB driver and a 256 MB
   result budget streams ``range(--big-rows)`` (100 M rows, about 2.7 GB of Arrow) to an
   ADBC client that counts the rows and sums ``id``, while the resident memory of the
   node's processes is sampled every 0.5 s.  Then the same query through a Spark
   Connect server with the same 1 GB driver, with a time limit, and whether that
   server still answers ``SELECT 1`` afterwards.

Every process the benchmark starts is stopped at the end, also on errors or Ctrl-C.

Usage: python bench/cluster.py [--rows 10000000] [--runs 3] [--big-rows 100000000]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402 - the shared servers, processes, timing loop and reports

log = common.log
progress = common.progress

SCALE_SQL = "SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM range(0, {rows}, 1, {partitions})"
BIG_SQL = "SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM range({rows})"
SCALE_PARTITIONS = 12
NODE_COUNTS = (1, 2, 3)
MASTER = "local[2]"

COMMON_NODE_CONF = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}

#: driver memory of every cluster node in part 1
SCALE_DRIVER_MEMORY = "2g"
#: driver memory of the node and of the Spark Connect server in part 2
BIG_DRIVER_MEMORY = "1g"
BIG_MEMORY_BUDGET = "256m"

RSS_INTERVAL = 0.5
CONTENDED_SHARE = common.CONTENDED_SHARE
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MB = 1e6


def flightsql_bin() -> str:
    return str(Path(sys.executable).with_name("flightsql"))


def node_conf_args(driver_memory: str) -> list[str]:
    args = ["--master", MASTER, "--conf", f"spark.driver.memory={driver_memory}"]
    for key, value in COMMON_NODE_CONF.items():
        args += ["--conf", f"{key}={value}"]
    return args


def first_line(text: str) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:500]
    return ""


def error_summary(exc: BaseException) -> str:
    """One line for an error: gRPC errors print their call object first, the message is in `details`."""
    text = str(exc)
    match = re.search(r'details = "(.*)"', text)
    line = match.group(1) if match and text.lstrip().startswith("<") else first_line(text)
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)b?\s*", text.lower())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) * 1024 ** "_kmgt".index(match.group(2) or "_")


# --------------------------------------------------------------------------- /proc


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, start time in clock ticks, state) of every process."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[19]), fields[0])
    return table


def descendants(root: int, include_root: bool = True) -> dict[int, int]:
    """pid -> start time of `root`'s process tree (start times guard against reused pids)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, int] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in table and (include_root or pid != root):
            out[pid] = table[pid][1]
        stack.extend(children.get(pid, ()))
    return out


def kill_leftovers(tree: dict[int, int]) -> list[int]:
    """SIGKILL the processes of a recorded tree that still run (same pid and start time, not zombies)."""
    table = _proc_table()
    killed = []
    for pid, started in tree.items():
        if pid in table and table[pid][1] == started and table[pid][2] != "Z":
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of the whole machine since boot, from /proc/stat.

    Counts every process, also those a PID namespace hides from /proc; steal is time the
    hypervisor gave to other guests.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal, steal


def cpu_probe() -> float:
    """Seconds one core takes for a fixed amount of hashing: slower means a slower or shared host."""
    import hashlib

    block = b"\x5a" * (1 << 20)
    t0 = time.perf_counter()
    digest = hashlib.sha256()
    for _ in range(256):
        digest.update(block)
    return time.perf_counter() - t0


def _kind(pid: int, root: int) -> str:
    try:
        argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        argv = []
    if argv and argv[0].endswith(b"java"):
        return "jvm"
    if pid == root:
        return "root"
    if not argv:
        return "other"
    if any(b"pyspark.daemon" in a or b"pyspark.worker" in a for a in argv):
        return "python_workers"
    return "other"


def _rss(pid: int) -> tuple[int, int]:
    """(resident bytes, anonymous resident bytes) of a process; the rest is file-backed or shared."""
    rss = anon = 0
    try:
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return rss, anon


class RssSampler:
    """Resident memory of a process tree, by kind of process, every `interval` seconds."""

    KINDS = ("root", "jvm", "python_workers", "other")

    def __init__(self, root: int, interval: float = RSS_INTERVAL) -> None:
        self.root = root
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._kinds: dict[tuple[int, int], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        tree = descendants(self.root)
        by_kind = dict.fromkeys([*self.KINDS, *(f"{k}_anon" for k in self.KINDS)], 0)
        for pid, started in tree.items():
            key = (pid, started)
            kind = self._kinds.get(key)
            if kind is None:
                kind = self._kinds[key] = _kind(pid, self.root)
            rss, anon = _rss(pid)
            by_kind[kind] += rss
            by_kind[f"{kind}_anon"] += anon
        self.samples.append({"t": time.time(), "processes": len(tree), **by_kind})

    def _loop(self) -> None:
        while True:
            try:
                self._sample()
            except Exception:
                pass
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


#: what the big-result report follows: (key, label, bytes of one sample)
RSS_SERIES: dict[str, Any] = {
    "node_rss": lambda s: s["root"] + s["jvm"],
    "all_rss": lambda s: sum(s[k] for k in RssSampler.KINDS),
    "node_anon": lambda s: s["root_anon"] + s["jvm_anon"],
    "all_anon": lambda s: sum(s[f"{k}_anon"] for k in RssSampler.KINDS),
    "python_node_anon": lambda s: s["root_anon"],
    "jvm_anon": lambda s: s["jvm_anon"],
    "python_workers_anon": lambda s: s["python_workers_anon"],
    "file_backed": lambda s: sum(s[k] - s[f"{k}_anon"] for k in RssSampler.KINDS),
}
RSS_LABELS = {
    "node_rss": "RSS, node (Python + JVM)",
    "all_rss": "RSS, all (with Python workers)",
    "node_anon": "anonymous, node (Python + JVM)",
    "all_anon": "anonymous, all",
    "python_node_anon": "  anonymous, flightsql Python",
    "jvm_anon": "  anonymous, Spark driver JVM",
    "python_workers_anon": "  anonymous, Python workers",
    "file_backed": "file-backed, all",
}


def rss_report(samples: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """Peak, final and per-quarter peaks of the node processes (root + JVM) and of the whole tree.

    Each both as resident memory (RSS) and as its anonymous part (heap, buffers: what the
    processes allocated); the difference is file-backed, mostly spill files mapped for reading,
    which the kernel can drop at any time.
    """
    series = RSS_SERIES
    window = [s for s in samples if start <= s["t"] <= end]
    before = [s for s in samples if s["t"] < start]
    after = [s for s in samples if s["t"] > end]
    if not window:
        return {"samples_in_window": 0}
    span = max(end - start, 1e-9)

    def quarter_peaks(fn: Any) -> list[int]:
        peaks = []
        for q in range(4):
            lo, hi = start + span * q / 4, start + span * (q + 1) / 4
            values = [fn(s) for s in window if lo <= s["t"] <= hi]
            peaks.append(max(values) if values else 0)
        return peaks

    out: dict[str, Any] = {"samples_in_window": len(window), "interval_seconds": RSS_INTERVAL}
    for name, fn in series.items():
        quarters = quarter_peaks(fn)
        peak = max(fn(s) for s in window)
        out[name] = {
            "before_query_bytes": fn(before[-1]) if before else None,
            "peak_bytes": peak,
            "peak_first_quarter_bytes": quarters[0],
            "peak_per_quarter_bytes": quarters,
            "final_bytes": fn(window[-1]),
            "after_stream_bytes": fn(after[min(len(after) - 1, int(2 / RSS_INTERVAL))]) if after else None,
            "peak_vs_first_quarter": round(peak / quarters[0], 3) if quarters[0] else None,
        }
    peak_sample = max(window, key=series["all_rss"])
    out["by_process_kind_at_peak_bytes"] = {
        k: {"rss": peak_sample[k], "anon": peak_sample[f"{k}_anon"]} for k in RssSampler.KINDS
    }
    return out


def compact_samples(samples: list[dict[str, Any]], origin: float) -> dict[str, Any]:
    return {
        "columns": [
            "t_seconds", "processes",
            *[f"{k}_rss_mb" for k in RssSampler.KINDS], *[f"{k}_anon_mb" for k in RssSampler.KINDS],
        ],
        "rows": [
            [
                round(s["t"] - origin, 2), s["processes"],
                *[round(s[k] / MB, 1) for k in RssSampler.KINDS],
                *[round(s[f"{k}_anon"] / MB, 1) for k in RssSampler.KINDS],
            ]
            for s in samples
        ],
    }


# --------------------------------------------------------------------------- clients
# Each client runs in its own process (fresh interpreter, own memory, hard deadline).


def _write(out: str, data: dict[str, Any]) -> None:
    tmp = Path(out + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(out)


def _adbc_stream(cur: Any, sql: str, sum_ids: bool) -> dict[str, Any]:
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    wall0 = time.time()
    cur.execute(sql)
    t_exec = time.perf_counter()
    reader = cur.fetch_record_batch()
    t_first = None
    rows = batches = nbytes = id_sum = 0
    for batch in reader:
        if t_first is None:
            t_first = time.perf_counter()
        rows += batch.num_rows
        batches += 1
        nbytes += batch.nbytes
        if sum_ids:
            id_sum += pc.sum(batch.column(0)).as_py() or 0
    t_end = time.perf_counter()
    return {
        "seconds": t_end - t0,
        "execute_seconds": t_exec - t0,
        "first_batch_seconds": (t_first if t_first is not None else t_end) - t0,
        "rows": rows,
        "batches": batches,
        "arrow_bytes": nbytes,
        "id_sum": id_sum if sum_ids else None,
        "columns": reader.schema.names,
        "wall_start": wall0,
        "wall_end": time.time(),
    }


def _check(result: dict[str, Any], rows: int, what: str) -> None:
    if result["rows"] != rows:
        raise RuntimeError(f"{what}: got {result['rows']} rows, expected {rows}")
    if result["columns"] != ["id", "doubled", "label"]:
        raise RuntimeError(f"{what}: unexpected columns {result['columns']}")
    if result["id_sum"] is not None and result["id_sum"] != rows * (rows - 1) // 2:
        raise RuntimeError(f"{what}: sum(id) = {result['id_sum']}, expected {rows * (rows - 1) // 2}")


def read_endpoints(uri: str, sql: str) -> dict[str, Any]:
    """GetFlightInfo, then every endpoint read on its own (one after the other) with pyarrow."""
    import pyarrow.flight as flight

    from flightsql.protocol import codec

    from flightsql.protocol import commands as cmd

    client = flight.connect(uri)
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=sql)))
    t0 = time.perf_counter()
    info = client.get_flight_info(descriptor)
    info_seconds = time.perf_counter() - t0
    endpoints = []
    for endpoint in info.endpoints:
        location = endpoint.locations[0].uri.decode() if endpoint.locations else uri
        reader_client = flight.connect(location)
        t1 = time.perf_counter()
        rows = batches = nbytes = 0
        try:
            for chunk in reader_client.do_get(endpoint.ticket):
                if chunk.data is None:
                    continue
                rows += chunk.data.num_rows
                batches += 1
                nbytes += chunk.data.nbytes
        finally:
            reader_client.close()
        endpoints.append({
            "location": location, "rows": rows, "batches": batches, "arrow_bytes": nbytes,
            "seconds": time.perf_counter() - t1,
        })
    client.close()
    return {"get_flight_info_seconds": info_seconds, "endpoints": endpoints}


def client_scale(uri: str, rows: int, runs: int, out: str) -> None:
    from adbc_driver_flightsql import dbapi

    sql = SCALE_SQL.format(rows=rows, partitions=SCALE_PARTITIONS)
    conn = dbapi.connect(uri, autocommit=True)
    try:
        cur = conn.cursor()
        warm = _adbc_stream(cur, sql, sum_ids=True)
        _check(warm, rows, "ADBC warm-up")
        progress(f"warm-up: {warm['seconds']:.3f}s, rows and sum(id) checked")
        timed = []
        for i in range(runs):
            r = _adbc_stream(cur, sql, sum_ids=False)
            _check(r, rows, f"ADBC run {i + 1}")
            timed.append(r)
            progress(f"run {i + 1}/{runs}: {r['seconds']:.3f}s ({rows / r['seconds'] / 1e6:.2f} M rows/s)")
        cur.close()
    finally:
        conn.close()
    shares = read_endpoints(uri, sql)
    total = sum(e["rows"] for e in shares["endpoints"])
    if total != rows:
        raise RuntimeError(f"endpoints read one by one: got {total} rows, expected {rows}")
    progress(
        "per endpoint: " + ", ".join(f"{e['rows']:,} rows in {e['seconds']:.2f}s" for e in shares["endpoints"])
    )
    _write(out, {"warmup": warm, "runs": timed, "shares": shares})


def client_big(uri: str, rows: int, out: str) -> None:
    """One ADBC stream of the big result: rows counted, sum(id) computed per batch, nothing kept."""
    import pyarrow.compute as pc
    from adbc_driver_flightsql import dbapi

    sql = BIG_SQL.format(rows=rows)
    step = max(rows // 10, 1)
    conn = dbapi.connect(uri, autocommit=True)
    try:
        cur = conn.cursor()
        wall0 = time.time()
        t0 = time.perf_counter()
        cur.execute(sql)
        t_exec = time.perf_counter()
        reader = cur.fetch_record_batch()
        t_first = None
        count = batches = nbytes = id_sum = 0
        next_report = step
        for batch in reader:
            if t_first is None:
                t_first = time.perf_counter()
                progress(f"first batch after {t_first - t0:.1f}s")
            count += batch.num_rows
            batches += 1
            nbytes += batch.nbytes
            id_sum += pc.sum(batch.column(0)).as_py() or 0
            if count >= next_report:
                progress(f"{count:,} rows after {time.perf_counter() - t0:.1f}s")
                next_report += step
        t_end = time.perf_counter()
        result = {
            "seconds": t_end - t0, "execute_seconds": t_exec - t0,
            "first_batch_seconds": (t_first if t_first is not None else t_end) - t0,
            "rows": count, "batches": batches, "arrow_bytes": nbytes, "id_sum": id_sum,
            "columns": reader.schema.names, "wall_start": wall0, "wall_end": time.time(),
        }
        cur.close()
    finally:
        conn.close()
    _check(result, rows, "big result")
    _write(out, result)


def _connect_stream(spark: Any, df: Any) -> tuple[str, Iterator[Any]]:
    """Arrow tables of a Spark Connect result as they arrive (the stream behind toLocalIterator).

    Falls back to toArrow() (the whole table at once) where the client has no such stream.
    """
    import pyarrow as pa

    client = spark.client
    if hasattr(client, "to_table_as_iterator") and hasattr(df, "_plan"):
        plan = df._plan.to_proto(client)

        def tables() -> Iterator[pa.Table]:
            for item in client.to_table_as_iterator(plan, df._plan.observations):
                if isinstance(item, pa.Table):
                    yield item

        return "streamed (client.to_table_as_iterator)", tables()
    return "toArrow()", iter([df.toArrow()])


def client_connect_big(uri: str, rows: int, out: str) -> None:
    """The big result through Spark Connect: counts what arrives, records how it ends."""
    import pyarrow.compute as pc

    result: dict[str, Any] = {"ok": False, "rows": 0, "arrow_bytes": 0, "id_sum": 0, "wall_start": time.time()}
    t0 = time.perf_counter()
    step = max(rows // 10, 1)
    next_report = step
    last_write = 0.0
    spark = None
    try:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.remote(uri).getOrCreate()
        method, tables = _connect_stream(spark, spark.sql(BIG_SQL.format(rows=rows)))
        result["client_method"] = method
        _write(out, result)
        for table in tables:
            if result["rows"] == 0:
                result["first_batch_seconds"] = time.perf_counter() - t0
                progress(f"first batch after {result['first_batch_seconds']:.1f}s")
            result["rows"] += table.num_rows
            result["arrow_bytes"] += table.nbytes
            result["id_sum"] += pc.sum(table.column(0)).as_py() or 0
            if result["rows"] >= next_report:
                progress(f"{result['rows']:,} rows after {time.perf_counter() - t0:.1f}s")
                next_report += step
            now = time.perf_counter()
            if now - last_write > 5:  # what arrived so far survives a kill at the deadline
                result["seconds"] = now - t0
                _write(out, result)
                last_write = now
        result["ok"] = result["rows"] == rows and result["id_sum"] == rows * (rows - 1) // 2
        if not result["ok"]:
            result["error"] = f"incomplete result: {result['rows']} rows, sum(id) {result['id_sum']}"
    except BaseException as exc:  # the outcome is the measurement
        result["error_type"] = type(exc).__name__
        result["error"] = error_summary(exc)
        result["error_text"] = str(exc)[:4000]
        progress(f"failed after {time.perf_counter() - t0:.1f}s: {result['error']}")
    result["seconds"] = time.perf_counter() - t0
    result["wall_end"] = time.time()
    _write(out, result)
    if spark is not None and result["ok"]:
        with contextlib.suppress(BaseException):
            spark.stop()


def client_connect_select1(uri: str, out: str) -> None:
    result: dict[str, Any] = {"ok": False}
    t0 = time.perf_counter()
    try:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.remote(uri).getOrCreate()
        result["ok"] = spark.sql("SELECT 1").toArrow().num_rows == 1
        with contextlib.suppress(BaseException):
            spark.stop()
    except BaseException as exc:
        result["error_type"] = type(exc).__name__
        result["error"] = error_summary(exc)
    result["seconds"] = time.perf_counter() - t0
    _write(out, result)


def client_main(args: argparse.Namespace) -> int:
    if args.client == "scale":
        client_scale(args.uri, args.rows, args.runs, args.out)
    elif args.client == "big":
        client_big(args.uri, args.big_rows, args.out)
    elif args.client in ("connect-big", "connect-select1"):
        if args.client == "connect-big":
            client_connect_big(args.uri, args.big_rows, args.out)
        else:
            client_connect_select1(args.uri, args.out)
        # The result is written; a Connect client whose server died can hang in its gRPC
        # threads at interpreter exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    else:
        raise SystemExit(f"unknown client {args.client}")
    return 0


# --------------------------------------------------------------------------- orchestration


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, registry: common.Registry,
                 monitor: common.CpuMonitor) -> None:
        self.args = args
        self.tmp = tmp
        self.registry = registry
        self.monitor = monitor
        #: the process tree of each process started (by its pid), for a last sweep of the
        #: processes that left its process group (ZooKeeper and the metastore do)
        self.trees: dict[int, dict[int, int]] = {}

    # -- processes ---------------------------------------------------------
    def remember_tree(self, proc: common.Managed) -> None:
        self.trees.setdefault(proc.proc.pid, {}).update(descendants(proc.proc.pid))

    def stop(self, proc: common.Managed, grace: float) -> None:
        self.remember_tree(proc)
        self.registry.stop(proc, grace=grace)
        killed = kill_leftovers(self.trees.pop(proc.proc.pid, {}))
        if killed:
            log(f"  stopped {len(killed)} processes of {proc.name} that outlived it")

    def stop_all(self) -> None:
        for proc in list(self.registry.procs):
            with contextlib.suppress(Exception):
                self.remember_tree(proc)
        self.registry.stop_all()
        for tree in self.trees.values():
            killed = kill_leftovers(tree)
            if killed:
                log(f"  stopped {len(killed)} processes that outlived their parent")
        self.trees.clear()

    def client(self, kind: str, timeout: float, uri: str = "", wait_idle: bool = True) -> dict[str, Any]:
        """Run one client process; returns its JSON plus the CPU other processes used meanwhile."""
        out = self.tmp / f"client-{kind}.json"
        out.unlink(missing_ok=True)
        cmd = [
            sys.executable, str(Path(__file__).resolve()), "--client", kind, "--out", str(out),
            "--rows", str(self.args.rows), "--runs", str(self.args.runs), "--big-rows", str(self.args.big_rows),
        ]
        if uri:
            cmd += ["--uri", uri]
        env = dict(os.environ)
        for key in ("SPARK_REMOTE", "PYSPARK_SUBMIT_ARGS"):
            env.pop(key, None)
        idle = self.monitor.wait_idle(self.args.idle_timeout) if wait_idle and self.args.idle_timeout > 0 else None
        probe = min(cpu_probe() for _ in range(3)) if wait_idle else None
        start = self.monitor.snapshot()
        ticks0 = machine_ticks()
        wall_start = time.time()
        proc = self.registry.add(common.Managed(f"client-{kind}", cmd, self.tmp / f"client-{kind}.log", env=env, cwd=self.tmp))
        timed_out = False
        try:
            code = proc.wait(timeout)
        except TimeoutError:
            timed_out = True
            code = None
        finally:
            self.stop(proc, grace=5.0)
        wall_end = time.time()
        result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        result["client_wall_start"], result["client_wall_end"] = wall_start, wall_end
        result["client_wall_seconds"] = wall_end - wall_start
        result["client_exit_code"] = code
        result["timed_out"] = timed_out
        result["cpu"] = cpu = self.monitor.since(start)
        cpu["before"] = idle
        ticks1 = machine_ticks()
        hz = os.sysconf("SC_CLK_TCK")
        capacity = max(cpu["wall_seconds"], 1e-9) * (len(os.sched_getaffinity(0)) or 1)
        busy = (ticks1[0] - ticks0[0]) / hz
        # CPU the machine spent that no process visible here accounts for (hidden processes, steal)
        unattributed = max(0.0, busy - cpu["our_cpu_seconds"] - cpu["foreign_cpu_seconds"])
        cpu["machine_busy_share"] = round(busy / capacity, 4)
        cpu["steal_seconds"] = round((ticks1[1] - ticks0[1]) / hz, 2)
        cpu["unattributed_share"] = round(unattributed / capacity, 4)
        cpu["cpu_probe_seconds"] = round(probe, 4) if probe is not None else None
        cpu["foreign_share_of_machine"] = max(cpu["foreign_share_of_machine"], cpu["unattributed_share"])
        if wait_idle and cpu["foreign_share_of_machine"] > CONTENDED_SHARE:
            log(
                f"  WARNING: other processes used {cpu['foreign_cpu_seconds']:.1f} CPU-s"
                f" ({cpu['foreign_share_of_machine']:.0%} of the machine) during this measurement"
            )
        if not timed_out and code != 0:
            result["failure"] = f"client {kind} exited with {code}\n{proc.tail()}"
        return result

    def attempts(self, what: str, once: Any) -> dict[str, Any]:
        """`once()` repeated (up to --contention-retries times) while other processes competed for the CPUs.

        Each attempt starts its own servers, so results held by an earlier attempt (until
        their TTL) never weigh on a later one.  The attempt with the least competition is kept.
        """
        attempts: list[dict[str, Any]] = []
        for attempt in range(self.args.contention_retries + 1):
            result = once()
            attempts.append(result)
            if result["cpu"]["foreign_share_of_machine"] <= CONTENDED_SHARE:
                break
            if attempt < self.args.contention_retries:
                log(f"  repeating {what} on a quieter machine, with new servers")
        kept = min(attempts, key=lambda r: r["cpu"]["foreign_share_of_machine"])
        kept["attempts"] = len(attempts)
        kept["discarded_attempts"] = [
            {k: r.get(k) for k in ("cpu", "runs", "seconds", "rss")} for r in attempts if r is not kept
        ]
        return kept

    def checked(self, kind: str, timeout: float, uri: str) -> dict[str, Any]:
        result = self.client(kind, timeout, uri)
        if result.get("timed_out"):
            raise TimeoutError(f"client {kind} did not finish within {timeout:.0f}s")
        if "failure" in result:
            raise RuntimeError(result["failure"])
        return result

    # -- part 1 ------------------------------------------------------------
    def start_cluster(self, nodes: int) -> tuple[common.Managed, list[str]]:
        work = self.tmp / f"cluster-{nodes}"
        cmd = [
            flightsql_bin(), "cluster", "--nodes", str(nodes), "--port", "0", "--work-dir", str(work),
            *node_conf_args(SCALE_DRIVER_MEMORY), "--memory-budget", self.args.scale_memory_budget,
        ]
        env = dict(os.environ)
        env.pop("PYSPARK_SUBMIT_ARGS", None)
        proc = self.registry.add(
            common.Managed(f"cluster-{nodes}", cmd, self.tmp / f"cluster-{nodes}.log", env=env, cwd=self.tmp,
                       ready=r"^cluster ready:")
        )
        t0 = time.perf_counter()
        proc.wait_ready(self.args.start_timeout)
        uris: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = proc.log_path.read_text(errors="replace")
            tail = text[text.index("cluster ready:"):] if "cluster ready:" in text else ""
            uris = re.findall(r"^  (grpc://\S+)\s*$", tail, flags=re.M)
            if len(uris) >= nodes:
                break
            time.sleep(0.2)
        if len(uris) != nodes:
            raise RuntimeError(f"cluster of {nodes} printed {len(uris)} node addresses\n{proc.tail()}")
        self.remember_tree(proc)
        log(f"  cluster of {nodes} ready after {time.perf_counter() - t0:.1f}s: {', '.join(uris)}")
        return proc, uris

    def scale(self) -> dict[str, Any]:
        rows, runs = self.args.rows, self.args.runs
        timeout = self.args.client_timeout or 180.0 + (runs + 2) * max(60.0, rows / 1e5)
        out: dict[str, Any] = {}
        for nodes in NODE_COUNTS:
            log(f"[1] cluster of {nodes} node(s): {rows:,} rows, {SCALE_PARTITIONS} partitions")

            def once(nodes: int = nodes) -> dict[str, Any]:
                proc = None
                try:
                    proc, uris = self.start_cluster(nodes)
                    heaps = common.group_jvm_heaps(proc.pgid)
                    result = self.checked("scale", timeout, uris[0])
                    result["uris"], result["jvm_xmx"] = uris, heaps
                    result["spill_per_node"] = [
                        common.spill_usage(self.tmp / f"cluster-{nodes}" / f"node-{i}" / "spill") for i in range(nodes)
                    ]
                    return result
                finally:
                    if proc is not None:
                        self.stop(proc, grace=150.0)
                    shutil.rmtree(self.tmp / f"cluster-{nodes}", ignore_errors=True)

            try:
                out[str(nodes)] = summarize_scale(self.attempts(f"the {nodes}-node measurement", once), rows)
            except Exception as exc:
                out[str(nodes)] = {"error": str(exc)}
                log(f"  FAILED: {exc}")
        return out

    # -- part 2 ------------------------------------------------------------
    def big_node(self) -> dict[str, Any]:
        rows = self.args.big_rows
        log(f"[2] one node, driver {BIG_DRIVER_MEMORY}, budget {BIG_MEMORY_BUDGET}: {rows:,} rows streamed")
        timeout = self.args.big_timeout or 300.0 + rows / 1e5
        kept = self.attempts("the big result", lambda: self._big_node_once(rows, timeout))
        kept.pop("wall_start", None)
        kept.pop("wall_end", None)
        kept.pop("columns", None)
        kept.update({
            "query": BIG_SQL.format(rows=rows),
            "id_sum_expected": rows * (rows - 1) // 2,
            "checked": "row count and sum(id)",
            "rows_per_second": rows / kept["seconds"],
            "driver_memory": BIG_DRIVER_MEMORY,
            "memory_budget": BIG_MEMORY_BUDGET,
            "result_vs_heap": kept["arrow_bytes"] / parse_size(BIG_DRIVER_MEMORY),
        })
        return kept

    def _big_node_once(self, rows: int, timeout: float) -> dict[str, Any]:
        work = self.tmp / "big-node"
        shutil.rmtree(work, ignore_errors=True)
        cmd = [
            flightsql_bin(), "serve", "--port", "0", "--work-dir", str(work),
            *node_conf_args(BIG_DRIVER_MEMORY), "--memory-budget", BIG_MEMORY_BUDGET,
        ]
        env = dict(os.environ)
        env.pop("PYSPARK_SUBMIT_ARGS", None)
        node = self.registry.add(
            common.Managed("big-node", cmd, self.tmp / "big-node.log", env=env, cwd=self.tmp,
                       ready=r"ready: Flight SQL at (grpc://127\.0\.0\.1:\d+)")
        )
        sampler = None
        try:
            t0 = time.perf_counter()
            uri = node.wait_ready(self.args.start_timeout).group(1)
            log(f"  node ready at {uri} after {time.perf_counter() - t0:.1f}s")
            self.remember_tree(node)
            heaps = common.group_jvm_heaps(node.pgid)
            sampler = RssSampler(node.proc.pid)
            result = self.checked("big", timeout, uri)
            time.sleep(3)  # a few samples after the stream ended
            sampler.stop()
            result["uri"] = uri
            result["jvm_xmx"] = heaps
            result["rss"] = rss_report(sampler.samples, result["wall_start"], result["wall_end"])
            result["rss_samples"] = compact_samples(
                [s for s in sampler.samples if s["t"] >= result["wall_start"] - 5], result["wall_start"]
            )
            result["spill"] = common.spill_usage(work / "spill")
            return result
        finally:
            if sampler is not None:
                sampler.stop()
            self.stop(node, grace=60.0)
            shutil.rmtree(work, ignore_errors=True)

    @contextlib.contextmanager
    def connect_settings(self) -> Iterator[dict[str, str]]:
        """throughput.py's Spark Connect launcher, with this benchmark's driver memory and master."""
        saved = common.COMMON_CONF, common.MASTER
        common.COMMON_CONF = {**saved[0], "spark.driver.memory": BIG_DRIVER_MEMORY}
        common.MASTER = MASTER
        try:
            yield dict(common.COMMON_CONF)
        finally:
            common.COMMON_CONF, common.MASTER = saved

    def big_connect(self) -> dict[str, Any]:
        rows = self.args.big_rows
        log(f"[2] Spark Connect, driver {BIG_DRIVER_MEMORY}: {rows:,} rows, limit {self.args.connect_timeout:.0f}s")
        out: dict[str, Any] = {"query": BIG_SQL.format(rows=rows), "time_limit_seconds": self.args.connect_timeout}
        server = sampler = None
        with self.connect_settings() as conf:
            out["conf"] = conf
            out["master"] = common.MASTER
            server, uri = common.start_spark_connect(self.registry, self.tmp, self.args.start_timeout)
        try:
            self.remember_tree(server)
            out["jvm_xmx"] = common.group_jvm_heaps(server.pgid)
            sampler = RssSampler(server.proc.pid)
            result = self.client("connect-big", self.args.connect_timeout, uri)
            time.sleep(3)
            if result.get("seconds") is None:
                result["seconds"] = result["client_wall_seconds"]  # includes the client's start-up
            out["client"] = {
                k: result.get(k) for k in (
                    "ok", "client_method", "rows", "arrow_bytes", "seconds", "first_batch_seconds",
                    "error_type", "error", "timed_out", "client_exit_code",
                )
            }
            out["client"]["error_text"] = result.get("error_text")
            if result.get("error"):
                out["outcome"] = f"error: {result['error']}"
            elif result.get("timed_out"):
                out["outcome"] = (
                    f"no complete result within {self.args.connect_timeout:.0f}s: the client was still waiting"
                    " when it was stopped"
                )
            elif result.get("ok"):
                out["outcome"] = "complete result"
            else:
                out["outcome"] = f"client failed: {first_line(result.get('failure', 'unknown'))}"
            out["rows_per_second"] = rows / result["seconds"] if result.get("ok") else None
            out["cpu"] = result["cpu"]
            start = result.get("wall_start") or result["client_wall_start"]
            end = result.get("wall_end") or result["client_wall_end"]
            out["rss"] = rss_report(sampler.samples, start, end)
            sampler.stop()
            gone = next((x["t"] for x in sampler.samples if x["t"] >= start and x["jvm"] == 0), None)
            out["server_jvm_gone_after_seconds"] = None if gone is None else round(gone - start, 1)
            out["server_alive_after"] = server.proc.poll() is None and bool(descendants(server.proc.pid))
            out["server_exit_code"] = server.proc.returncode
            check = self.client("connect-select1", 120.0, uri, wait_idle=False)
            out["select1_after"] = {
                "ok": bool(check.get("ok")), "seconds": check.get("seconds"),
                "error": check.get("error") or ("no answer within 120s" if check.get("timed_out") else None),
            }
            out["server_alive_after_select1"] = server.proc.poll() is None
            out["server_log"] = connect_log_findings(server.log_path)
        finally:
            if sampler is not None:
                sampler.stop()
            if server is not None:
                self.stop(server, grace=30.0)
        return out


def connect_log_findings(path: Path) -> dict[str, Any]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    def first(pattern: str) -> str | None:
        rx = re.compile(pattern)
        return next((line.strip()[:400] for line in lines if rx.search(line)), None)

    return {
        "out_of_memory": first(r"OutOfMemoryError|Java heap space|GC overhead limit"),
        "first_error": first(r"\b(ERROR|Exception)\b"),
        "tail": [line[:400] for line in lines[-15:]],
    }


def summarize_scale(result: dict[str, Any], rows: int) -> dict[str, Any]:
    seconds = [r["seconds"] for r in result["runs"]]
    median = statistics.median(seconds)
    endpoints = result["shares"]["endpoints"]
    total_rows = sum(e["rows"] for e in endpoints) or 1
    total_bytes = sum(e["arrow_bytes"] for e in endpoints) or 1
    return {
        "uris": result["uris"],
        "client_uri": result["uris"][0],
        "jvm_xmx": result["jvm_xmx"],
        "seconds": {"median": median, "min": min(seconds), "max": max(seconds), "runs": seconds},
        "rows_per_second": {"median": rows / median, "best": rows / min(seconds), "worst": rows / max(seconds)},
        "arrow_bytes": result["runs"][0]["arrow_bytes"],
        "first_batch_seconds_median": statistics.median(r["first_batch_seconds"] for r in result["runs"]),
        "execute_seconds_median": statistics.median(r["execute_seconds"] for r in result["runs"]),
        "batches": result["runs"][0]["batches"],
        "warmup_seconds": result["warmup"]["seconds"],
        "checked": "rows, columns and sum(id) of the warm-up; rows of every run and of the endpoints read one by one",
        "endpoints": len(endpoints),
        "get_flight_info_seconds": result["shares"]["get_flight_info_seconds"],
        "shares": [
            {**e, "row_share": e["rows"] / total_rows, "byte_share": e["arrow_bytes"] / total_bytes}
            for e in endpoints
        ],
        "spill_per_node": result["spill_per_node"],
        "cpu": result["cpu"],
        "attempts": result["attempts"],
        "discarded_attempts": [
            {"cpu": d["cpu"], "runs_seconds": [r["seconds"] for r in d.get("runs") or []]}
            for d in result["discarded_attempts"]
        ],
    }


# --------------------------------------------------------------------------- report


def mb(value: float | None) -> str:
    return "-" if value is None else f"{value / MB:,.0f} MB"


def print_report(report: dict[str, Any]) -> None:
    rows = report["rows"]
    cores = report["machine"].get("nproc")
    scale = report.get("scale")
    if scale is not None:
        print_scale(report, scale, cores, rows)
    if "big_node" in report or "big_connect" in report:
        print_big(report)
    contention = report.get("contention_flags") or []
    if contention:
        print("\n   WARNING: other processes used more than 5% of the machine during: " + ", ".join(contention))
    print()


def print_scale(report: dict[str, Any], scale: dict[str, Any], cores: Any, rows: int) -> None:
    print()
    print(f"1. One result spread over 1, 2 and 3 nodes: {SCALE_SQL.format(rows=f'{rows:,}', partitions=SCALE_PARTITIONS)}")
    print(f"   ADBC stream from the first node, {report['runs']} timed runs after 1 warm-up; rows/s from the median")
    print(
        f"   Note: all nodes share one {cores}-core machine, and the node a client asks runs the whole Spark job,"
        "\n   so more nodes cannot add CPU here: the figures show the overhead of spreading a result over"
        "\n   nodes and how evenly it is spread, not scale-out."
    )
    print()
    header = f"   {'nodes':>5} {'median s':>9} {'min s':>7} {'max s':>7} {'rows/s':>10} {'MB/s':>6} {'vs 1 node':>9} {'1st batch s':>11} {'other CPU':>9} {'probe ms':>8}"
    print(header)
    print("   " + "-" * (len(header) - 3))
    base = (scale.get("1") or {}).get("rows_per_second", {}).get("median")
    for nodes in NODE_COUNTS:
        s = scale.get(str(nodes))
        if not s or "error" in s:
            print(f"   {nodes:>5} failed: {first_line((s or {}).get('error', 'not run'))}")
            continue
        rps = s["rows_per_second"]["median"]
        rel = f"{rps / base:.2f}x" if base else "-"
        print(
            f"   {nodes:>5} {s['seconds']['median']:>9.3f} {s['seconds']['min']:>7.3f} {s['seconds']['max']:>7.3f}"
            f" {rps / 1e6:>8.2f} M {s['arrow_bytes'] / s['seconds']['median'] / MB:>6.0f} {rel:>9}"
            f" {s['first_batch_seconds_median']:>11.3f} {s['cpu']['foreign_share_of_machine']:>9.0%}"
            f" {(s['cpu'].get('cpu_probe_seconds') or 0) * 1e3:>8.0f}"
        )
    print(
        "\n   other CPU: share of the machine used by processes not started here (or by none visible"
        "\n   here, from /proc/stat); probe ms: one core hashing 256 MB just before the measurement"
        "\n   (higher means a slower or shared host)."
    )
    print("\n   Share of each node (every endpoint read once on its own with pyarrow):")
    for nodes in NODE_COUNTS:
        s = scale.get(str(nodes))
        if not s or "error" in s:
            continue
        parts = [
            f"{sh['location'].rsplit(':', 1)[-1]}: {sh['rows']:,} rows ({sh['row_share']:.1%}), "
            f"{sh['arrow_bytes'] / MB:,.0f} MB ({sh['byte_share']:.1%}), {sh['seconds']:.2f}s"
            for sh in s["shares"]
        ]
        print(f"   {nodes} node(s), {s['endpoints']} endpoint(s):")
        for p in parts:
            print(f"      port {p}")
        spilled = sum(x["spilled_bytes"] for x in s["spill_per_node"])
        if spilled:
            print(f"      spilled to disk: {spilled / MB:,.0f} MB")



def print_big(report: dict[str, Any]) -> None:
    big = report.get("big_node") or {}
    print()
    big_rows = f"{report['big_rows']:,}"
    print(f"2. A result larger than the driver heap: {BIG_SQL.format(rows=big_rows)}")
    if "error" in big:
        print(f"   Flight SQL node: FAILED: {first_line(big['error'])}")
    elif big:
        print(
            f"   Flight SQL node (driver {big['driver_memory']}, -Xmx {','.join(big['jvm_xmx']) or '?'},"
            f" result budget {big['memory_budget']}), ADBC client counting rows and summing id:"
        )
        print(
            f"     {big['rows']:,} rows, {big['arrow_bytes'] / 1e9:.2f} GB of Arrow"
            f" ({big['result_vs_heap']:.1f}x the heap) in {big['seconds']:.1f}s = {big['rows_per_second'] / 1e6:.2f} M rows/s;"
            f" first batch after {big['first_batch_seconds']:.1f}s; row count and sum(id) checked"
        )
        print("     memory of the node's process tree, sampled every 0.5 s, in MB:")
        print(f"       {'':<32} {'before':>7} {'peak':>7} {'1st 25%':>7} {'final':>7}   peak in each quarter of the stream")
        for key, label in RSS_LABELS.items():
            r = big["rss"].get(key)
            if not r:
                continue
            quarters = " / ".join(f"{q / MB:,.0f}" for q in r["peak_per_quarter_bytes"])
            before = "-" if r["before_query_bytes"] is None else f"{r['before_query_bytes'] / MB:,.0f}"
            print(
                f"       {label:<32} {before:>7} {r['peak_bytes'] / MB:>7,.0f}"
                f" {r['peak_first_quarter_bytes'] / MB:>7,.0f} {r['final_bytes'] / MB:>7,.0f}   {quarters}"
            )
        print("       anonymous = what the processes allocated (the JVM's grows until its heap reaches -Xmx);"
              "\n       file-backed = mostly spill files mapped while they are read, pages the kernel can drop.")
        sp = big.get("spill") or {}
        print(f"     spilled to disk: {sp.get('spilled_bytes', 0) / MB:,.0f} MB; other processes used"
              f" {big['cpu']['foreign_share_of_machine']:.0%} of the machine meanwhile")
    sc = report.get("big_connect") or {}
    if "error" in sc:
        print(f"   Spark Connect: FAILED to measure: {first_line(sc['error'])}")
    elif sc:
        c = sc.get("client", {})
        print(f"   Spark Connect (driver {BIG_DRIVER_MEMORY}, -Xmx {','.join(sc.get('jvm_xmx') or []) or '?'}),"
              f" client {c.get('client_method') or '-'}, limit {sc['time_limit_seconds']:.0f}s:")
        print(f"     outcome after {c.get('seconds') or 0:.1f}s: {sc['outcome']}; {c.get('rows') or 0:,} rows arrived")
        if sc.get("server_jvm_gone_after_seconds") is not None:
            print(f"     the server's JVM was gone {sc['server_jvm_gone_after_seconds']:.1f}s after the query started")
        if sc.get("rows_per_second"):
            print(f"     {sc['rows_per_second'] / 1e6:.2f} M rows/s")
        log_ = sc.get("server_log") or {}
        if log_.get("out_of_memory"):
            print(f"     server log: {log_['out_of_memory']}")
        r = sc.get("rss") or {}
        if r.get("all_rss"):
            print(f"     server RSS peak {mb(r['all_rss']['peak_bytes'])} (anonymous {mb(r['all_anon']['peak_bytes'])})")
        alive = "yes" if sc.get("server_alive_after") else f"no (exit code {sc.get('server_exit_code')})"
        sel = sc.get("select1_after") or {}
        sel_text = "answered" if sel.get("ok") else f"failed: {sel.get('error')}"
        print(f"     server alive afterwards: {alive}; SELECT 1 afterwards: {sel_text}")


def orchestrate(args: argparse.Namespace) -> int:
    with common.bench_run("flightsql-bench-cluster-") as (registry, monitor, tmp):
        return _orchestrate(args, Bench(args, tmp, registry, monitor))


def _orchestrate(args: argparse.Namespace, bench: Bench) -> int:
    started = time.time()
    tmp = bench.tmp
    errors: dict[str, str] = {}
    parts = set(args.parts.split(","))
    try:
        info = common.machine_info()
        log(f"machine: {info['nproc']} cores, pyspark {info['pyspark']}, pyarrow {info['pyarrow']}; scratch {tmp}")
        report: dict[str, Any] = {
            "benchmark": "cluster",
            "timestamp": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "rows": args.rows,
            "runs": args.runs,
            "big_rows": args.big_rows,
            "machine": info,
            "note": (
                f"All nodes share one {info['nproc']}-core machine and the node a client asks runs the whole"
                " Spark job; more nodes cannot add CPU here. The cluster figures show the overhead of spreading"
                " a result over nodes and how evenly it is spread, not scale-out."
            ),
            "settings": {
                "scale_node_args": [*node_conf_args(SCALE_DRIVER_MEMORY), "--memory-budget", args.scale_memory_budget],
                "scale_query": SCALE_SQL.format(rows=args.rows, partitions=SCALE_PARTITIONS),
                "big_node_args": [*node_conf_args(BIG_DRIVER_MEMORY), "--memory-budget", BIG_MEMORY_BUDGET],
                "big_query": BIG_SQL.format(rows=args.big_rows),
                "connect_time_limit_seconds": args.connect_timeout,
            },
        }
        if "scale" in parts:
            report["scale"] = bench.scale()
            for k, v in report["scale"].items():
                if "error" in v:
                    errors[f"scale_{k}_nodes"] = v["error"]
        if "big" in parts:
            try:
                report["big_node"] = bench.big_node()
            except Exception as exc:
                report["big_node"] = {"error": str(exc)}
                errors["big_node"] = str(exc)
                log(f"  FAILED: {exc}")
        if "connect" in parts:
            try:
                report["big_connect"] = bench.big_connect()
            except Exception as exc:
                report["big_connect"] = {"error": str(exc)}
                errors["big_connect"] = str(exc)
                log(f"  FAILED: {exc}")
        flags = [
            f"{k} node(s)" for k, v in (report.get("scale") or {}).items()
            if v.get("cpu", {}).get("foreign_share_of_machine", 0) > CONTENDED_SHARE
        ]
        for key, label in (("big_node", "big result (node)"), ("big_connect", "big result (Spark Connect)")):
            if (report.get(key) or {}).get("cpu", {}).get("foreign_share_of_machine", 0) > CONTENDED_SHARE:
                flags.append(label)
        report["contention_flags"] = flags
        report["errors"] = errors
        report["duration_seconds"] = round(time.time() - started, 1)
        print_report(report)
        common.write_results("cluster", report)
        print(f"(took {report['duration_seconds'] / 60:.1f} min)")
        if errors:
            log("some measurements failed:\n" + "\n".join(f"  {k}: {first_line(v)}" for k, v in errors.items()))
        return 1 if errors else 0
    finally:
        bench.stop_all()
        if args.keep_scratch:
            log(f"scratch kept at {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the cluster query (default: 10,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per cluster size after one warm-up (default: 3)")
    parser.add_argument("--big-rows", type=int, default=100_000_000,
                        help="rows of the larger-than-heap result (default: 100,000,000, about 2.7 GB of Arrow)")
    parser.add_argument("--parts", default="scale,big,connect",
                        help="comma-separated parts to run: scale, big, connect (default: all)")
    parser.add_argument("--scale-memory-budget", default="2g",
                        help="--memory-budget of every cluster node in part 1; large enough that no node spills"
                             " the results of the timed runs, which stay held until their TTL (default: 2g)")
    parser.add_argument("--connect-timeout", type=float, default=600.0,
                        help="seconds the Spark Connect client may take for the big result (default: 600)")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds a server or cluster may take to start")
    parser.add_argument("--client-timeout", type=float, default=0.0,
                        help="seconds the measurements of one cluster size may take (default: from --rows and --runs)")
    parser.add_argument("--big-timeout", type=float, default=0.0,
                        help="seconds the node may take for the big result (default: 300 + big-rows / 100,000)")
    parser.add_argument("--idle-timeout", type=float, default=180.0,
                        help="seconds to wait, before each measurement, for other processes to leave the CPUs"
                             " alone (0: do not wait)")
    parser.add_argument("--contention-retries", type=int, default=1,
                        help="times to repeat a measurement during which other processes used more than"
                             f" {CONTENDED_SHARE * 100:.0f}%% of the CPUs (default: 1)")
    parser.add_argument("--keep-scratch", action="store_true", help="keep the scratch folder (logs, spills)")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.runs < 1 or args.big_rows < 1:
        parser.error("--rows, --runs and --big-rows must be positive")
    unknown = set(args.parts.split(",")) - {"scale", "big", "connect"}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if args.client:
        return client_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
