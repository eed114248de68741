"""Throughput and latency of the Flight SQL node against Spark's own result paths, with
every side up at once and timed rounds alternating.

Measures, on the same machine and the same generated data:

* rows/s of ``SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM range(N)``
  read (a) from a Flight SQL node with ADBC as a stream of record batches,
  (b) with ``spark.sql(sql).toArrow()`` in a local SparkSession, and
  (c) with ``spark.sql(sql).toArrow()`` through a Spark Connect server;
* p50 latency of ``SELECT 1`` round trips against the node and Spark Connect.

The node, the Spark Connect server and the three clients (each in its own process, the
in-process one with its own JVM) all stay up. Each round times every side once, in an
order that rotates (``bench/common.py``), so whatever else the machine does falls on every
side alike; the ratios are the medians of the per-round ratios.

Usage: python bench/throughput.py [--rows 10000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402 - the shared servers, processes, timing loop and reports

LATENCY_SQL = "SELECT 1"
#: SELECT 1 round trips a side makes per latency round
LATENCY_PER_ROUND = 10

TARGET_VS_INPROC = 0.8
TARGET_VS_CONNECT = 1.0


# --------------------------------------------------------------------------- sides (client processes)


def _reader(read: Callable[[str], tuple[int, int, dict[str, float]]], rows: int, what: str,
            select_one: Callable[[], None] | None) -> dict[str, Callable[..., dict[str, Any]]]:
    """The requests a side answers: a checked warm-up, one timed run, SELECT 1 round trips."""
    sql = common.THROUGHPUT_SQL.format(rows=rows)

    def run(check: bool = False) -> dict[str, Any]:
        gc.collect()
        started = time.perf_counter()
        count, doubled, detail = read(sql)
        seconds = time.perf_counter() - started
        common.check_rows(count, rows, what)
        if check:
            common.check_sum(doubled, rows, what)
        return {"seconds": seconds, **{k: v - started for k, v in detail.items()}}

    def latency(iterations: int) -> dict[str, Any]:
        assert select_one is not None
        samples = []
        for _ in range(iterations):
            started = time.perf_counter()
            select_one()
            samples.append(time.perf_counter() - started)
        return {"samples": samples, "seconds": statistics.median(samples)}

    handlers: dict[str, Callable[..., dict[str, Any]]] = {"warmup": lambda: run(True), "run": run}
    if select_one is not None:
        handlers["latency"] = latency
    return handlers


def side_node(uri: str, rows: int) -> dict[str, Callable[..., dict[str, Any]]]:
    import pyarrow.compute as pc
    from adbc_driver_flightsql import dbapi

    conn = dbapi.connect(uri, autocommit=True)
    cursor = conn.cursor()

    def read(sql: str) -> tuple[int, int, dict[str, float]]:
        cursor.execute(sql)
        executed = time.perf_counter()
        first = None
        count = doubled = 0
        for batch in cursor.fetch_record_batch():
            if first is None:
                first = time.perf_counter()
            count += batch.num_rows
            doubled += pc.sum(batch.column(1)).as_py() or 0
        return count, doubled, {"execute_seconds": executed, "first_batch_seconds": first or executed}

    def select_one() -> None:
        cursor.execute(LATENCY_SQL)
        if cursor.fetch_arrow_table().num_rows != 1:
            raise RuntimeError("node: SELECT 1 did not return one row")

    return _reader(read, rows, "node", select_one)


def _spark_read(spark: Any) -> Callable[[str], tuple[int, int, dict[str, float]]]:
    import pyarrow.compute as pc

    def read(sql: str) -> tuple[int, int, dict[str, float]]:
        table = spark.sql(sql).toArrow()
        return table.num_rows, pc.sum(table.column("doubled")).as_py() or 0, {}

    return read


def side_connect(uri: str, rows: int) -> dict[str, Callable[..., dict[str, Any]]]:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(uri).getOrCreate()

    def select_one() -> None:
        if spark.sql(LATENCY_SQL).toArrow().num_rows != 1:
            raise RuntimeError("Spark Connect: SELECT 1 did not return one row")

    return _reader(_spark_read(spark), rows, "Spark Connect", select_one)


def side_inproc(rows: int) -> dict[str, Callable[..., dict[str, Any]]]:
    from pyspark.sql import SparkSession

    # builder settings reach spark-submit: spark.driver.memory sizes this process's JVM
    builder = SparkSession.builder.master(common.MASTER).appName("bench-inprocess-toarrow")
    for key, value in common.COMMON_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return _reader(_spark_read(spark), rows, "in-process", None)


def side_main(args: argparse.Namespace) -> int:
    makers = {
        "node": lambda: side_node(args.uri, args.rows),
        "connect": lambda: side_connect(args.uri, args.rows),
        "inproc": lambda: side_inproc(args.rows),
    }
    return common.serve_requests(makers[args.side]())


# --------------------------------------------------------------------------- the comparison


def orchestrate(args: argparse.Namespace) -> int:
    started = time.time()
    timeout = 180.0 + max(60.0, args.rows / 1e5)
    script = Path(__file__).resolve()
    with common.bench_run("flightsql-bench-") as (registry, monitor, tmp):
        info = common.machine_info()
        common.log(f"machine: {info['nproc']} cores, Python {info['python']}, pyspark {info['pyspark']}")
        common.log(f"rows {args.rows:,}, rounds {args.rounds}, driver memory {common.DRIVER_MEMORY}, "
                   f"master {common.MASTER}; every side up at once; scratch {tmp}")
        node, node_uri = common.start_node(registry, tmp, args.start_timeout)
        connect, connect_uri = common.start_spark_connect(registry, tmp, args.start_timeout)
        heaps = {"node": common.group_jvm_heaps(node.pgid), "spark_connect": common.group_jvm_heaps(connect.pgid)}
        sides = [
            common.Side(registry, tmp, "node", script, "--uri", node_uri, "--rows", str(args.rows)),
            common.Side(registry, tmp, "inproc", script, "--rows", str(args.rows)),
            common.Side(registry, tmp, "connect", script, "--uri", connect_uri, "--rows", str(args.rows)),
        ]
        for side in sides:
            side.ask(timeout + args.start_timeout, do="warmup")  # rows and sum(doubled) checked
        if args.idle_timeout > 0:
            monitor.wait_idle(args.idle_timeout)
        contention = monitor.snapshot()
        runs = common.alternating(sides, args.rounds, timeout, do="run")
        latency_sides = [s for s in sides if s.name != "inproc"]
        latencies = common.alternating(latency_sides, args.rounds, timeout, do="latency",
                                       iterations=LATENCY_PER_ROUND)
        failed = runs.pop("failed") + latencies.pop("failed")
        if failed or not runs["node"]:
            common.log(f"the comparison failed: {failed}")
            return 1
        cpu = monitor.since(contention)
        seconds = {name: [r["seconds"] for r in answers] for name, answers in runs.items()}
        rows_per_second = {name: args.rows / statistics.median(s) for name, s in seconds.items()}
        p50 = {name: [a["seconds"] for a in answers] for name, answers in latencies.items()}
        report = {
            "benchmark": "throughput",
            "rows": args.rows,
            "rounds": args.rounds,
            "query": common.THROUGHPUT_SQL.format(rows=args.rows),
            "latency_query": LATENCY_SQL,
            "latency_per_round": LATENCY_PER_ROUND,
            "settings": {"master": common.MASTER, "conf": common.COMMON_CONF, "jvm_xmx": heaps},
            "machine": info,
            "seconds": seconds,
            "rows_per_second": rows_per_second,
            "node_detail": {k: statistics.median(r[k] for r in runs["node"])
                            for k in ("execute_seconds", "first_batch_seconds")},
            "select1_p50_seconds": p50,
            "ratios": {
                "node_vs_inprocess": common.round_ratios(seconds["inproc"], seconds["node"]),
                "node_vs_connect": common.round_ratios(seconds["connect"], seconds["node"]),
                "select1_node_vs_connect": common.round_ratios(p50["node"], p50["connect"]),
            },
            "contention": cpu,
            "node_spill": common.spill_usage(tmp / "node-work" / "spill"),
            "duration_seconds": round(time.time() - started, 1),
        }
        print_report(report)
        common.write_results("throughput", report)
        for side in sides:
            registry.stop(side.managed, grace=10.0)
    return 0


def print_report(report: dict[str, Any]) -> None:
    ratios = report["ratios"]
    labels = {"node": "Flight SQL node, ADBC stream", "inproc": "Spark in-process toArrow()",
              "connect": "Spark Connect toArrow()"}
    print(f"\nThroughput: {report['query']}; {report['rounds']} rounds, every side once a round, order rotating\n")
    for name, label in labels.items():
        s = report["seconds"][name]
        print(f"  {label:<32} median {statistics.median(s):7.3f}s  ({min(s):.3f}-{max(s):.3f})"
              f"  {common.fmt_rate(report['rows_per_second'][name])} rows/s")
    detail = report["node_detail"]
    print(f"\n  node: execute() returned after {detail['execute_seconds']:.3f}s, first batch after "
          f"{detail['first_batch_seconds']:.3f}s (medians)")
    p50 = report["select1_p50_seconds"]
    print(f"\nSELECT 1, {LATENCY_PER_ROUND} round trips a side a round: p50 node "
          f"{statistics.median(p50['node']) * 1e3:.1f} ms, Spark Connect {statistics.median(p50['connect']) * 1e3:.1f} ms")
    print("\nRatios: medians of the per-round ratios (range)\n")
    for key, text, target, higher in (
        ("node_vs_inprocess", "rows/s: node / in-process toArrow()", TARGET_VS_INPROC, True),
        ("node_vs_connect", "rows/s: node / Spark Connect toArrow()", TARGET_VS_CONNECT, True),
        ("select1_node_vs_connect", "SELECT 1 p50: node / Spark Connect", 1.0, False),
    ):
        r = ratios[key]
        met = r["median"] >= target if higher else r["median"] <= target
        print(f"  {text:<42} {r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})   target "
              f"{'>=' if higher else '<='} {target}: {'met' if met else 'NOT met'}")
    cpu = report["contention"]
    print(f"\n  other processes used {cpu['foreign_share_of_machine']:.0%} of the machine meanwhile\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of range(N) (default: 10,000,000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up (default: 5)")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds a server may take to start")
    parser.add_argument("--idle-timeout", type=float, default=300.0,
                        help="seconds to wait, before the rounds, for other processes to leave the CPUs alone")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.rounds < 1:
        parser.error("--rows and --rounds must be positive")
    if args.side:
        os.environ.pop("SPARK_REMOTE", None)
        return side_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
