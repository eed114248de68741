"""The node against Spark Connect with both servers up and timed rounds alternating.

``throughput.py`` times one server after the other, so a neighbour that is busy during
one of them skews the ratio.  Here both servers run at once (each ``local[*]``, 4 GB
driver, started as ``throughput.py`` starts them) and every round times both, in
alternating order, back to back: whatever else the machine does falls on both.  The
ratio of each round is taken, and the median of the rounds reported.

    python bench/alternate.py                          # 10 M rows x 5 rounds, first batch of 30 M x 3
    python bench/alternate.py --rows 1000000 --rounds 2 --first-batch-rows 3000000 --first-batch-rounds 1

Measured:

* **throughput**: ``SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM
  range(N)``, from the call to the last batch: ADBC ``cursor.execute`` and
  ``fetch_record_batch`` against the node, ``spark.sql(...).toArrow()`` through Spark
  Connect.  Rows and ``sum(doubled)`` are checked in the warm-up rounds.
* **time to the first batch** of the same query on a larger result: the node's first
  batch through ADBC; Spark Connect's first Arrow batch from its streaming client
  (``SparkConnectClient.to_table_as_iterator``, the iterator ``toArrow()`` drains).
  Both are read to the end (rows checked), so no result is left running.

Needs the ``bench`` extras (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput as tp  # noqa: E402 - the shared servers, checks and CPU monitor

FIRST_BATCH_ROWS = 30_000_000


def _node_once(uri: str) -> Callable[[int, bool], dict[str, float]]:
    import pyarrow.compute as pc
    from adbc_driver_flightsql import dbapi

    conn = dbapi.connect(uri, autocommit=True)
    cursor = conn.cursor()

    def once(rows: int, check: bool) -> dict[str, float]:
        started = time.perf_counter()
        cursor.execute(tp.THROUGHPUT_SQL.format(rows=rows))
        first = None
        count = doubled = 0
        for batch in cursor.fetch_record_batch():
            if first is None:
                first = time.perf_counter()
            count += batch.num_rows
            if check:
                doubled += pc.sum(batch.column(1)).as_py() or 0
        ended = time.perf_counter()
        tp._check_rows(count, rows, "node")
        if check:
            tp._check_sum(doubled, rows, "node")
        return {"seconds": ended - started, "first_batch_seconds": (first or ended) - started}

    once.close = lambda: (cursor.close(), conn.close())  # type: ignore[attr-defined]
    return once


def _connect_once(uri: str) -> Callable[[int, bool], dict[str, float]]:
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(uri).getOrCreate()
    # a server that died fails the round at once, instead of minutes of reconnecting
    spark.client.set_retry_policies([])

    def once(rows: int, check: bool) -> dict[str, float]:
        started = time.perf_counter()
        df = spark.sql(tp.THROUGHPUT_SQL.format(rows=rows))
        first = None
        count = doubled = 0
        for part in spark.client.to_table_as_iterator(df._plan.to_proto(spark.client), {}):
            if not isinstance(part, pa.Table):
                continue  # the schema
            if first is None:
                first = time.perf_counter()
            count += part.num_rows
            if check:
                doubled += pc.sum(part.column(1)).as_py() or 0
        ended = time.perf_counter()
        tp._check_rows(count, rows, "Spark Connect")
        if check:
            tp._check_sum(doubled, rows, "Spark Connect")
        return {"seconds": ended - started, "first_batch_seconds": (first or ended) - started}

    once.close = spark.stop  # type: ignore[attr-defined]
    return once


def _within(deadline: float, name: str, once: Callable[[int, bool], dict[str, float]], rows: int) -> dict[str, float]:
    """``once(rows)`` on a thread of its own, given up after ``deadline`` seconds (a server
    whose heap ran out may never answer at all)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = once(rows, False)
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise TimeoutError(f"{name} did not deliver {rows:,} rows within {deadline:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _rounds(
    what: str, rounds: int, rows: int, node: Callable[[int, bool], dict[str, float]],
    connect: Callable[[int, bool], dict[str, float]], monitor: tp.CpuMonitor, deadline: float = 180.0,
) -> list[dict[str, Any]]:
    node(rows, True)  # warm-ups, with the rows and sums checked
    connect(rows, True)
    done = []
    for index in range(rounds):
        order = [("node", node), ("connect", connect)]
        if index % 2:
            order.reverse()
        start = monitor.snapshot()
        try:
            timed: dict[str, Any] = {name: _within(deadline, name, once, rows) for name, once in order}
        except Exception as exc:  # noqa: BLE001 - a server that died ends the rounds, with the cause kept
            tp.log(f"{what} round {index + 1} failed: {str(exc)[:300]}")
            done.append({"error": str(exc)[:2000]})
            break
        timed["first"] = order[0][0]
        timed["foreign_cpu_share"] = monitor.since(start)["foreign_share_of_machine"]
        done.append(timed)
        key = "seconds" if what == "throughput" else "first_batch_seconds"
        tp.progress(f"{what} round {index + 1}/{rounds}: node {timed['node'][key]:.2f}s, "
                    f"Spark Connect {timed['connect'][key]:.2f}s")
    return done


def _summary(rounds: list[dict[str, Any]], key: str, rows: int) -> dict[str, Any]:
    failed = [r["error"] for r in rounds if "error" in r]
    rounds = [r for r in rounds if "error" not in r]
    if not rounds:
        return {"failed": failed}
    node = [r["node"][key] for r in rounds]
    connect = [r["connect"][key] for r in rounds]
    # throughput: how much faster the node is (Connect's time over the node's); first
    # batch: the node's wait as a share of Connect's
    ratios = [c / n for n, c in zip(node, connect)] if key == "seconds" else [n / c for n, c in zip(node, connect)]
    return {
        "node_median_s": statistics.median(node), "connect_median_s": statistics.median(connect),
        "node_rows_per_s": rows / statistics.median(node), "connect_rows_per_s": rows / statistics.median(connect),
        "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "ratios": ratios, "failed": failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--first-batch-rows", type=int, default=FIRST_BATCH_ROWS)
    parser.add_argument("--first-batch-rounds", type=int, default=3)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    with tp.bench_run("flightsql-alternate-") as (registry, monitor, tmp):
        info = tp.machine_info()
        tp.log(f"machine: {info['nproc']} cores; both servers up, rounds alternating; scratch {tmp}")
        _node, node_uri = tp.start_node(registry, tmp, args.start_timeout)
        _server, connect_uri = tp.start_spark_connect(registry, tmp, args.start_timeout)
        node, connect = _node_once(node_uri), _connect_once(connect_uri)
        try:
            throughput = _rounds("throughput", args.rounds, args.rows, node, connect, monitor)
            first = _rounds("first batch", args.first_batch_rounds, args.first_batch_rows, node, connect, monitor)
        finally:
            node.close()  # type: ignore[attr-defined]
            connect.close()  # type: ignore[attr-defined]
        report = {
            "benchmark": "alternate",
            "timestamp": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": info,
            "settings": {"master": tp.MASTER, "conf": tp.COMMON_CONF},
            "throughput": {"rows": args.rows, **_summary(throughput, "seconds", args.rows), "rounds": throughput},
            "first_batch": {"rows": args.first_batch_rows, **_summary(first, "first_batch_seconds", args.first_batch_rows),
                            "rounds": first},
        }
        t, f = report["throughput"], report["first_batch"]
        if "ratio_median" in t:
            print(f"throughput, {args.rows:,} rows: node {t['node_rows_per_s'] / 1e6:.2f} M rows/s, Spark Connect "
                  f"{t['connect_rows_per_s'] / 1e6:.2f} M rows/s; node / Connect {t['ratio_median']:.2f}x "
                  f"(rounds {t['ratio_min']:.2f}-{t['ratio_max']:.2f}x)")
        if "ratio_median" in f:
            print(f"first batch, {args.first_batch_rows:,} rows: node {f['node_median_s']:.2f}s, Spark Connect "
                  f"{f['connect_median_s']:.2f}s; node / Connect {f['ratio_median']:.2f}x "
                  f"(rounds {f['ratio_min']:.2f}-{f['ratio_max']:.2f}x)")
        for what, part in (("throughput", t), ("first batch", f)):
            for failure in part.get("failed", []):
                print(f"{what}: a round failed: {failure[:300]}")
        out = tp.RESULTS_DIR / f"alternate-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {out}")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
