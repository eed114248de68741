"""A dashboard's load: many clients at once running small aggregates, node against Spark Connect.

Both servers run at once (each ``local[*]``, 4 GB driver, started as ``throughput.py``
starts them), each with a 2 M-row table made by the same SQL.  A round runs ``--clients``
clients at once against one server for ``--seconds``, each client on its own connection
(its own session) running the dashboard's queries over and over; the next round does the
same against the other server, and the order alternates, so whatever else the machine
does falls on both.  Reported: queries per second and p95 latency of each round, and
their ratios (node over Spark Connect), medians over the rounds.  Also a single client's
``SELECT 1`` latency, p50, alternating in the same way.

    python bench/dashboard.py                            # 16 clients, 3 rounds of 20 s each
    python bench/dashboard.py --clients 4 --rounds 1 --seconds 5 --rows 200000

ADBC clients keep their session with cookies (``adbc.flight.sql.rpc.with_cookie_middleware``);
each Spark Connect client is a session of its own (``SparkSession.builder.remote().create()``).
Every answer is checked against the first answer to the same query.  Needs the ``bench``
extras (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402 - the shared servers, processes, timing loop and reports

TABLE_SQL = (
    "CREATE TABLE dash USING parquet AS SELECT id, CAST(id % 50 AS INT) AS region, "
    "CAST(id % 7 AS INT) AS weekday, CAST((id * 7919) % 10000 AS DOUBLE) / 100 AS amount "
    "FROM range(0, {rows}, 1, 4)"
)
#: a dashboard's tiles: small aggregates, each a few rows
QUERIES = (
    "SELECT count(*), sum(amount) FROM dash",
    "SELECT region, sum(amount) AS total FROM dash GROUP BY region ORDER BY total DESC LIMIT 5",
    "SELECT weekday, count(*), avg(amount) FROM dash GROUP BY weekday ORDER BY weekday",
    "SELECT region, max(amount) FROM dash WHERE weekday = 3 GROUP BY region ORDER BY region LIMIT 10",
)
Client = Callable[[str], list[tuple[Any, ...]]]


def _adbc_client(uri: str) -> tuple[Client, Callable[[], None]]:
    from adbc_driver_flightsql import DatabaseOptions, dbapi

    conn = dbapi.connect(uri, db_kwargs={DatabaseOptions.WITH_COOKIE_MIDDLEWARE.value: "true"}, autocommit=True)
    cursor = conn.cursor()

    def run(sql: str) -> list[tuple[Any, ...]]:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]

    return run, lambda: (cursor.close(), conn.close())


def _connect_client(uri: str) -> tuple[Client, Callable[[], None]]:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(uri).create()
    spark.client.set_retry_policies([])

    def run(sql: str) -> list[tuple[Any, ...]]:
        table = spark.sql(sql).toArrow()
        return list(zip(*(column.to_pylist() for column in table.columns)))

    return run, spark.stop


def _rounded(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


class Answers:
    """The first answer to each query; every later one must match it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first: dict[str, list[tuple[Any, ...]]] = {}

    def check(self, sql: str, rows: list[tuple[Any, ...]], who: str) -> None:
        rows = _rounded(rows)
        with self._lock:
            expected = self._first.setdefault(sql, rows)
        if rows != expected:
            raise AssertionError(f"{who} answered {sql!r} with {rows[:3]}..., expected {expected[:3]}...")


def _load(make: Callable[[str], tuple[Client, Callable[[], None]]], uri: str, clients: int, seconds: float,
          answers: Answers, who: str) -> dict[str, Any]:
    """``clients`` clients at once for ``seconds``: latencies of every query that ended in time."""
    made = [make(uri) for _ in range(clients)]
    for run, _ in made:  # every session warm, and every answer checked once
        for sql in QUERIES:
            answers.check(sql, run(sql), who)
    latencies: list[list[float]] = [[] for _ in made]
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    deadline: list[float] = []

    def client(index: int) -> None:
        run, _ = made[index]
        start.wait()
        turn = index
        while time.perf_counter() < deadline[0]:
            sql = QUERIES[turn % len(QUERIES)]
            turn += 1
            began = time.perf_counter()
            try:
                rows = run(sql)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(str(exc)[:300])
                continue
            ended = time.perf_counter()
            if ended <= deadline[0]:
                latencies[index].append(ended - began)
                answers.check(sql, rows, who)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline.append(time.perf_counter() + seconds)
    start.wait()
    for thread in threads:
        thread.join(seconds + 120)
    for _, close in made:
        close()
    every = sorted(x for per in latencies for x in per)
    return {"queries": len(every), "qps": len(every) / seconds, "p50_s": common.percentile(every, 50) if every else None,
            "p95_s": common.percentile(every, 95) if every else None, "errors": errors[:5], "error_count": len(errors)}


def _select_one(make: Callable[[str], tuple[Client, Callable[[], None]]], uri: str, runs: int) -> float:
    run, close = make(uri)
    try:
        for _ in range(5):
            run("SELECT 1")
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            assert run("SELECT 1") == [(1,)]
            times.append(time.perf_counter() - began)
        return statistics.median(times)
    finally:
        close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--select-one-runs", type=int, default=50)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    with common.bench_run("flightsql-dashboard-") as (registry, monitor, tmp):
        info = common.machine_info()
        common.log(f"machine: {info['nproc']} cores; {args.clients} clients, both servers up, rounds alternating")
        _node, node_uri = common.start_node(registry, tmp, args.start_timeout)
        _server, connect_uri = common.start_spark_connect(registry, tmp, args.start_timeout)
        servers = {"node": (_adbc_client, node_uri), "connect": (_connect_client, connect_uri)}
        for name, (make, uri) in servers.items():
            run, close = make(uri)
            run(TABLE_SQL.format(rows=args.rows))
            close()
            common.log(f"  {name}: table dash of {args.rows:,} rows made")
        answers = Answers()
        rounds = []
        for index in range(args.rounds):
            order = ["node", "connect"] if index % 2 == 0 else ["connect", "node"]
            start = monitor.snapshot()
            timed = {name: _load(servers[name][0], servers[name][1], args.clients, args.seconds, answers, name)
                     for name in order}
            timed["select_one_p50_s"] = {name: _select_one(servers[name][0], servers[name][1], args.select_one_runs)
                                         for name in order}
            timed["first"] = order[0]
            timed["foreign_cpu_share"] = monitor.since(start)["foreign_share_of_machine"]
            rounds.append(timed)
            common.progress(f"round {index + 1}/{args.rounds}: node {timed['node']['qps']:.1f} q/s, p95 "
                        f"{timed['node']['p95_s']:.3f}s; Spark Connect {timed['connect']['qps']:.1f} q/s, p95 "
                        f"{timed['connect']['p95_s']:.3f}s; SELECT 1 p50 node "
                        f"{timed['select_one_p50_s']['node'] * 1000:.1f} ms, Connect "
                        f"{timed['select_one_p50_s']['connect'] * 1000:.1f} ms")
        qps = [r["node"]["qps"] / r["connect"]["qps"] for r in rounds]
        p95 = [r["node"]["p95_s"] / r["connect"]["p95_s"] for r in rounds]
        one = [r["select_one_p50_s"]["node"] / r["select_one_p50_s"]["connect"] for r in rounds]
        report = {
            "benchmark": "dashboard",
            "timestamp": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": info,
            "settings": {"master": common.MASTER, "conf": common.COMMON_CONF, "rows": args.rows, "clients": args.clients,
                         "seconds": args.seconds, "queries": QUERIES},
            "qps_ratio_median": statistics.median(qps), "p95_ratio_median": statistics.median(p95),
            "select_one_p50_ratio_median": statistics.median(one),
            "qps_ratios": qps, "p95_ratios": p95, "select_one_p50_ratios": one, "rounds": rounds,
        }
        print(f"dashboard, {args.clients} clients, {args.rows:,} rows: queries per second node / Connect "
              f"{report['qps_ratio_median']:.2f}x (rounds {min(qps):.2f}-{max(qps):.2f}x); p95 latency node / Connect "
              f"{report['p95_ratio_median']:.2f}x (rounds {min(p95):.2f}-{max(p95):.2f}x)")
        print(f"SELECT 1, one client, p50 node / Connect {report['select_one_p50_ratio_median']:.2f}x "
              f"(rounds {min(one):.2f}-{max(one):.2f}x)")
        for name in ("node", "connect"):
            failed = sum(r[name]["error_count"] for r in rounds)
            if failed:
                print(f"{name}: {failed} queries failed, e.g. {rounds[0][name]['errors'][:1]}")
        common.write_results("dashboard", report)
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
