"""JDBC clients: the node through the Flight SQL JDBC driver against Spark's Thrift Server
through the Hive JDBC driver, both servers up and timed rounds alternating.

A BI tool reads a result with ``ResultSet.next`` over every row and a typed getter per
column.  ``bench/jdbc/JdbcRead.java`` (compiled here with ``javac``) does exactly that
for ``SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM range(N)``, timed
from ``executeQuery`` to the last row, with both drivers in one JVM: a warm-up read of
each (rows and ``sum(doubled)`` checked), then ``--rounds`` rounds that read both, the
order reversed each round.  The ratio of each round is taken, and their median reported.

    python bench/jdbc.py                       # 10 M rows x 5 rounds
    python bench/jdbc.py --rows 1000000 --rounds 2

Both servers run ``local[*]`` with a 4 GB driver, as ``throughput.py`` starts them.  The
Thrift Server is Spark's own (``HiveThriftServer2`` from the pip pyspark jars, with its
defaults), read through the Hive JDBC driver those jars carry (``hive-jdbc`` 2.3.10, the
artifact Maven Central serves); the Flight SQL JDBC driver comes from
``dev/jdbc-driver.sh``.  Both read with a fetch size of 10,000 rows (the Hive driver's
default is 1,000 rows a round trip; the Flight SQL driver streams whatever it is set to).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402 - the shared servers, processes, timing loop and reports

REPO = Path(__file__).resolve().parents[1]
READER = Path(__file__).resolve().parent / "jdbc" / "JdbcRead.java"

THRIFT_LOG4J2 = common.CONNECT_LOG4J2.replace(
    "org.apache.spark.sql.connect.service.SparkConnectServer", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2")


def start_thrift_server(registry: common.Registry, tmp: Path, timeout: float, sasl: bool) -> tuple[common.Managed, str]:
    """Spark's Thrift Server from the pip pyspark jars, through bin/spark-submit as for a
    Spark distribution, on a free loopback port."""
    home = common.pyspark_home()
    if not list((home / "jars").glob("spark-hive-thriftserver_*.jar")):
        raise RuntimeError(f"no spark-hive-thriftserver jar in {home / 'jars'}")
    port = common.free_port()
    cmd = ["bash", str(home / "bin" / "spark-submit"),
           "--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
           "--name", "bench-thrift-server", "--master", common.MASTER]
    for key, value in common.COMMON_CONF.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd += ["--conf", f"spark.sql.warehouse.dir={tmp / 'thrift-warehouse'}",
            "--conf", f"spark.driver.extraJavaOptions=-Dderby.system.home={tmp / 'thrift-derby'}",
            "spark-internal",
            "--hiveconf", f"hive.server2.thrift.port={port}",
            "--hiveconf", "hive.server2.thrift.bind.host=127.0.0.1",
            "--hiveconf", f"hive.server2.authentication={'NONE' if sasl else 'NOSASL'}"]
    conf_dir = tmp / "thrift-conf"
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "log4j2.properties").write_text(THRIFT_LOG4J2)
    env = dict(os.environ, SPARK_HOME=str(home), SPARK_CONF_DIR=str(conf_dir))
    for key in ("SPARK_REMOTE", "PYSPARK_SUBMIT_ARGS"):
        env.pop(key, None)
    server = registry.add(common.Managed("thrift-server", cmd, tmp / "thrift-server.log", env=env, cwd=tmp,
                                     ready=r"HiveThriftServer2 started"))
    started = time.perf_counter()
    server.wait_ready(timeout)
    common.log(f"  Thrift Server ready on 127.0.0.1:{port} after {time.perf_counter() - started:.1f}s")
    return server, f"jdbc:hive2://127.0.0.1:{port}/default" + ("" if sasl else ";auth=noSasl")


def flight_sql_jar() -> Path:
    subprocess.run(["bash", str(REPO / "dev" / "jdbc-driver.sh")], check=True)
    jars = sorted((REPO / ".cache" / "jdbc").glob("flight-sql-jdbc-driver-*.jar"))
    if not jars:
        raise RuntimeError("the Flight SQL JDBC driver could not be fetched (dev/jdbc-driver.sh)")
    return jars[-1]


def read_rounds(tmp: Path, targets: dict[str, str], rows: int, rounds: int, timeout: float,
                fetch_size: int) -> list[dict[str, Any]]:
    """Every read of JdbcRead's run, one dict per line it printed."""
    classes = tmp / "classes"
    subprocess.run(["javac", "-d", str(classes), str(READER)], check=True)
    classpath = os.pathsep.join([str(classes), str(flight_sql_jar()), str(common.pyspark_home() / "jars" / "*")])
    sql = common.THROUGHPUT_SQL.format(rows=rows)
    cmd = ["java", "--add-opens=java.base/java.nio=ALL-UNNAMED", "-Xmx2g", f"-Dbench.fetchSize={fetch_size}", "-cp", classpath, "JdbcRead",
           str(rounds), str(rows), sql, *(f"{name}={url}" for name, url in targets.items())]
    reads = []
    with open(tmp / "jdbc-read.log", "w") as log, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True) as reader:
        deadline = time.monotonic() + timeout
        assert reader.stdout is not None
        for line in reader.stdout:
            read = json.loads(line)
            reads.append(read)
            common.progress(f"round {read['round']} {read['name']}: {read['seconds']:.2f}s (executeQuery {read['execute_seconds']:.2f}s)")
            if time.monotonic() > deadline:
                os.killpg(reader.pid, signal.SIGKILL)
                raise TimeoutError(f"the JDBC reads took longer than {timeout:.0f} s")
        if reader.wait() != 0:
            raise RuntimeError(f"JdbcRead failed; see {tmp / 'jdbc-read.log'}")
    return reads


def summary(reads: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    timed = [r for r in reads if r["round"] > 0]
    rounds = sorted({r["round"] for r in timed})
    seconds = {name: [next(r["seconds"] for r in timed if r["round"] == n and r["name"] == name) for n in rounds]
               for name in ("node", "thrift")}
    ratio = common.round_ratios(seconds["thrift"], seconds["node"])  # how much faster the node is
    assert ratio is not None
    return {
        "node_median_s": statistics.median(seconds["node"]), "thrift_median_s": statistics.median(seconds["thrift"]),
        "node_rows_per_s": rows / statistics.median(seconds["node"]),
        "thrift_rows_per_s": rows / statistics.median(seconds["thrift"]),
        "ratio_median": ratio["median"], "ratio_min": ratio["min"], "ratio_max": ratio["max"],
        "ratios": ratio["rounds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--read-timeout", type=float, default=3600.0)
    parser.add_argument("--thrift-sasl", action="store_true",
                        help="the Thrift Server's default SASL transport (else NOSASL, its faster one)")
    parser.add_argument("--fetch-size", type=int, default=10000, help="JDBC fetch size of both drivers")
    args = parser.parse_args(argv)

    with common.bench_run("flightsql-jdbc-") as (registry, monitor, tmp):
        info = common.machine_info()
        common.log(f"machine: {info['nproc']} cores; both servers up, rounds alternating; scratch {tmp}")
        _node, node_uri = common.start_node(registry, tmp, args.start_timeout)
        _thrift, thrift_url = start_thrift_server(registry, tmp, args.start_timeout, args.thrift_sasl)
        node_url = f"jdbc:arrow-flight-sql://{node_uri.split('://', 1)[1]}?useEncryption=false"
        start = monitor.snapshot()
        reads = read_rounds(tmp, {"node": node_url, "thrift": thrift_url}, args.rows, args.rounds, args.read_timeout,
                            args.fetch_size)
        report = {
            "benchmark": "jdbc",
            "timestamp": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": info,
            "settings": {"master": common.MASTER, "conf": common.COMMON_CONF, "fetch_size": args.fetch_size},
            "rows": args.rows,
            "foreign_cpu_share": monitor.since(start)["foreign_share_of_machine"],
            **summary(reads, args.rows),
            "reads": reads,
        }
        print(f"JDBC, {args.rows:,} rows: node (Flight SQL JDBC) {report['node_rows_per_s'] / 1e6:.2f} M rows/s, "
              f"Thrift Server (Hive JDBC) {report['thrift_rows_per_s'] / 1e6:.2f} M rows/s; node / Thrift Server "
              f"{report['ratio_median']:.2f}x (rounds {report['ratio_min']:.2f}-{report['ratio_max']:.2f}x)")
        common.write_results("jdbc", report)
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
