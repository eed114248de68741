"""Time to the first batch of a large result: the node against Spark Connect, both up, rounds
alternating (``bench/common.py``).

    python bench/alternate.py                      # 30 M rows x 3 rounds
    python bench/alternate.py --rows 3000000 --rounds 1

The node's first batch through ADBC; Spark Connect's first Arrow batch from its streaming
client (``SparkConnectClient.to_table_as_iterator``, the iterator ``toArrow()`` drains).
Both are read to the end (rows checked, and ``sum(doubled)`` in the warm-up), so no result
is left running. A side that fails or does not deliver within 180 s ends the rounds, and
the report keeps the cause (Spark Connect's server may run out of heap). The throughput
comparison with every side up is ``bench/throughput.py``.

Needs the ``bench`` extras (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402 - the shared servers, processes, timing loop and reports

ROWS = 30_000_000
#: seconds a side may take to deliver a whole result
DEADLINE = 180.0


def _handlers(read: Callable[[str], tuple[int, int, float | None]], what: str, rows: int) -> dict[str, Any]:
    sql = common.THROUGHPUT_SQL.format(rows=rows)

    def run(check: bool = False) -> dict[str, Any]:
        started = time.perf_counter()
        count, doubled, first = read(sql)
        ended = time.perf_counter()
        common.check_rows(count, rows, what)
        if check:
            common.check_sum(doubled, rows, what)
        return {"seconds": (first or ended) - started, "whole_seconds": ended - started}

    return {"warmup": lambda: run(True), "run": run}


def side_node(uri: str, rows: int) -> dict[str, Any]:
    import pyarrow.compute as pc
    from adbc_driver_flightsql import dbapi

    cursor = dbapi.connect(uri, autocommit=True).cursor()

    def read(sql: str) -> tuple[int, int, float | None]:
        cursor.execute(sql)
        first, count, doubled = None, 0, 0
        for batch in cursor.fetch_record_batch():
            first = first or time.perf_counter()
            count += batch.num_rows
            doubled += pc.sum(batch.column(1)).as_py() or 0
        return count, doubled, first

    return _handlers(read, "node", rows)


def side_connect(uri: str, rows: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(uri).getOrCreate()
    spark.client.set_retry_policies([])  # a server that died fails the round at once

    def read(sql: str) -> tuple[int, int, float | None]:
        df = spark.sql(sql)
        first, count, doubled = None, 0, 0
        for part in spark.client.to_table_as_iterator(df._plan.to_proto(spark.client), {}):
            if isinstance(part, pa.Table):  # not the schema
                first = first or time.perf_counter()
                count += part.num_rows
                doubled += pc.sum(part.column(1)).as_py() or 0
        return count, doubled, first

    return _handlers(read, "Spark Connect", rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        make = side_node if args.side == "node" else side_connect
        return common.serve_requests(make(args.uri, args.rows))

    script = Path(__file__).resolve()
    with common.bench_run("flightsql-alternate-") as (registry, _monitor, tmp):
        info = common.machine_info()
        common.log(f"machine: {info['nproc']} cores; both servers up, rounds alternating; scratch {tmp}")
        _node, node_uri = common.start_node(registry, tmp, args.start_timeout)
        _server, connect_uri = common.start_spark_connect(registry, tmp, args.start_timeout)
        sides = [common.Side(registry, tmp, name, script, "--uri", uri, "--rows", str(args.rows))
                 for name, uri in (("node", node_uri), ("connect", connect_uri))]
        failed: list[dict[str, Any]] = []
        try:
            for side in sides:
                side.ask(DEADLINE + args.start_timeout, do="warmup")
        except RuntimeError as exc:
            failed.append({"round": 0, "error": str(exc)[:2000]})
        answers = common.alternating(sides, 0 if failed else args.rounds, DEADLINE, do="run")
        failed += answers.pop("failed")
        first = {name: [a["seconds"] for a in runs] for name, runs in answers.items()}
        report: dict[str, Any] = {
            "benchmark": "first-batch", "rows": args.rows, "machine": info,
            "settings": {"master": common.MASTER, "conf": common.COMMON_CONF},
            "first_batch_seconds": first, "failed": failed,
            "ratio": common.round_ratios(first["node"], first["connect"]) if first["node"] else None,
        }
        if report["ratio"]:
            r = report["ratio"]
            print(f"first batch, {args.rows:,} rows: node {statistics.median(first['node']):.2f}s, Spark Connect "
                  f"{statistics.median(first['connect']):.2f}s; node / Connect {r['median']:.2f}x "
                  f"(rounds {r['min']:.2f}-{r['max']:.2f}x)")
        for failure in failed:
            print(f"round {failure['round']} failed: {failure['error'][:300]}")
        common.write_results("alternate", report)
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
