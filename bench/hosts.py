"""The cluster on hosts of its own: the 10 M-row query on 1, 2 and 3 hosts, and how long
readers take to end when a host is cut off.

Builds the multi-host test bed of ``tests/testbed.py`` (network namespaces on one
machine: ZooKeeper and a Spark master on host ``zk``, a Spark worker and a node on each
node host, the reader on host ``client``).  Every host shares this machine's cores, so
more hosts do not mean more speed here: the figures show what spreading a result over
hosts costs and how evenly it spreads, not how it scales.

    python bench/hosts.py                      # 10 M rows on 1, 2, 3 hosts; 5 cuts
    python bench/hosts.py --rows 1000000 --runs 1 --cuts 1 --hosts 1 3

Measured:

* **spread**: ``SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM
  range(N)`` read by one reader process on the client host, every endpoint at its own
  node in parallel (pyarrow Flight, counting rows and summing ``doubled``: rows are
  checked, nothing is kept); the time from GetFlightInfo to the last batch (median of
  ``--runs`` after a warm-up) and each host's share of the rows.
* **cut**: on 3 hosts, a query whose result takes a while to stream; once every
  endpoint has delivered a batch, one node host's link goes down; the time from the cut
  until the last reader has ended, complete or with an error (median of ``--cuts``), and
  until the last reader of another host's endpoint has.  The readers use the keepalives
  of ``flightsql query`` (5 s pings, 5 s to answer): that bounds the reader of the cut
  host's own endpoint, which nothing else can end.
  The host is then healed and its node is back in the cluster before the next round.

Needs root and ``ip netns`` (see tests/testbed.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SQL = "SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM range(0, {rows}, 1, {partitions})"
#: streams for a while: long enough for a cut to land mid-stream
CUT_SQL = "SELECT id, repeat(CAST(id AS STRING), 20) AS pad FROM range(0, {rows}, 1, {partitions})"
USER, PASSWORD = "bench", "bench-password-7"
RESULTS = Path(__file__).resolve().parent / "results"


# -- the reader (runs on the client host) ----------------------------------------------


def reader(uri: str, sql: str, timeout: float, wait_for_cut: bool) -> dict[str, Any]:
    """Read every endpoint of ``sql`` in parallel; with ``signal``, say ``reading`` once
    each has a batch and time every end from the line that comes back on stdin."""
    import pyarrow.flight as flight

    from flightsql.client.connection import KEEPALIVE
    from flightsql.protocol import codec
    from flightsql.protocol import commands as cmd

    def connect(location: str) -> tuple[Any, Any]:
        # the keepalives `flightsql query` uses: a reader of a host that stops answering ends
        client = flight.connect(location, generic_options=list(KEEPALIVE))
        header = client.authenticate_basic_token(USER, PASSWORD)
        return client, flight.FlightCallOptions(headers=[header], timeout=timeout)

    started = time.monotonic()
    client, options = connect(uri)
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=sql)))
    info = client.get_flight_info(descriptor, options)
    results: list[dict[str, Any]] = [{} for _ in info.endpoints]
    first = threading.Condition()
    begun: set[int] = set()

    def read(index: int, endpoint: Any) -> None:
        location = endpoint.locations[0].uri.decode()
        result = results[index] = {"location": location, "rows": 0}
        try:
            endpoint_client, endpoint_options = connect(location)
            for chunk in endpoint_client.do_get(endpoint.ticket, endpoint_options):
                result["rows"] += chunk.data.num_rows
                if index not in begun:
                    with first:
                        begun.add(index)
                        first.notify_all()
        except Exception as exc:  # noqa: BLE001 - reported
            result["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        finally:
            result["ended"] = time.monotonic()
            with first:
                begun.add(index)
                first.notify_all()

    threads = [threading.Thread(target=read, args=(i, e), daemon=True) for i, e in enumerate(info.endpoints)]
    for thread in threads:
        thread.start()
    origin = started
    if wait_for_cut:
        with first:
            first.wait_for(lambda: len(begun) == len(threads), timeout=timeout)
        print("reading", flush=True)
        sys.stdin.readline()
        origin = time.monotonic()
    for thread in threads:
        thread.join()
    for result in results:
        result["seconds"] = round(result.pop("ended") - origin, 3)
    return {"endpoints": results, "seconds": max(r["seconds"] for r in results)}


# -- the orchestration ------------------------------------------------------------------


def _reader_command(uri: str, sql: str, timeout: float, cut: bool = False) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--reader", "--uri", uri, "--sql", sql,
            "--timeout", str(timeout)]
    return argv + (["--signal"] if cut else [])


def _cluster(hosts: int, work: Path) -> Any:
    from tests.integration.conftest import _add_user
    from tests.testbed import HostBed, HostCluster

    work.mkdir(parents=True, exist_ok=True)
    users = work / "users"
    _add_user(users, USER, PASSWORD)
    bed = HostBed(hosts, work).up()
    try:
        return HostCluster(bed, ["--users", str(users), "--result-ttl", "60", "--conf", "spark.driver.memory=1g",
                                 "--memory-budget", "256m"]).start()
    except BaseException:
        bed.down()
        raise


def _read(cluster: Any, sql: str, timeout: float = 300) -> dict[str, Any]:
    done = cluster.bed.run("client", _reader_command(cluster.nodes["h1"].uri, sql, timeout), timeout=timeout + 60)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(hosts: int, rows: int, runs: int, work: Path) -> dict[str, Any]:
    cluster = _cluster(hosts, work)
    try:
        sql = SQL.format(rows=rows, partitions=max(6, 2 * hosts))
        _read(cluster, sql)  # warm-up
        timed = []
        for run in range(runs):
            result = _read(cluster, sql)
            errors = [e["error"] for e in result["endpoints"] if "error" in e]
            if errors or sum(e["rows"] for e in result["endpoints"]) != rows:
                raise RuntimeError(f"run {run + 1}: rows {[e['rows'] for e in result['endpoints']]}, errors {errors}")
            timed.append(result)
            print(f"[bench]   {hosts} hosts, run {run + 1}/{runs}: {result['seconds']:.2f}s", file=sys.stderr, flush=True)
        seconds = [r["seconds"] for r in timed]
        shares: dict[str, list[float]] = {}
        for result in timed:
            for endpoint in result["endpoints"]:
                host = endpoint["location"].split("://", 1)[1].split(":", 1)[0]
                shares.setdefault(host, []).append(endpoint["rows"] / rows)
        return {
            "hosts": hosts, "rows": rows, "median_s": statistics.median(seconds), "min_s": min(seconds),
            "max_s": max(seconds), "rows_per_s": rows / statistics.median(seconds),
            "share_per_host": {h: round(statistics.median(s), 3) for h, s in sorted(shares.items())},
        }
    finally:
        cluster.bed.down()


def _live_nodes(cluster: Any) -> int:
    from tests.hostclient import main as _unused  # noqa: F401 - the client host has the project too

    probe = ("import json,sys,pyarrow.flight as f;"
             "from flightsql.protocol import commands as c;"
             f"cl=f.connect('{cluster.nodes['h1'].uri}');h=cl.authenticate_basic_token('{USER}','{PASSWORD}');"
             "o=f.FlightCallOptions(headers=[h],timeout=10);"
             "i=cl.get_flight_info(f.FlightDescriptor.for_command(c.encode_command(c.CommandStatementQuery("
             "query='SELECT id FROM range(0, 10, 1, 3)'))),o);print(len(i.endpoints))")
    done = cluster.bed.run("client", [sys.executable, "-c", probe], timeout=60)
    return int(done.stdout.strip() or 0) if done.returncode == 0 else 0


def cuts(rounds: int, rows: int, work: Path) -> dict[str, Any]:
    from tests.testbed import wait

    cluster = _cluster(3, work)
    try:
        sql = CUT_SQL.format(rows=rows, partitions=12)
        timed: list[dict[str, Any]] = []
        for round_ in range(3 * rounds):
            if len(timed) == rounds:
                break
            victim = ["h2", "h3"][round_ % 2]
            process = subprocess.Popen(
                cluster.bed.command("client", _reader_command(cluster.nodes["h1"].uri, sql, 120, cut=True)),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert process.stdout is not None and process.stdin is not None
            try:
                if not process.stdout.readline().startswith("reading"):
                    raise RuntimeError(process.stderr.read()[-2000:] if process.stderr else "reader failed")
                cluster.bed.cut(victim)
                process.stdin.write("cut\n")
                process.stdin.flush()
                out, err = process.communicate(timeout=180)
            finally:
                if process.poll() is None:
                    process.kill()
            result = json.loads(out.strip().splitlines()[-1])
            ends = [e["seconds"] for e in result["endpoints"]]
            cluster.bed.heal(victim)
            wait(lambda: _live_nodes(cluster) == 3, 180, "the healed node did not rejoin", 2.0)
            if max(ends) <= 0:
                print(f"[bench]   cut {round_ + 1}: every reader had ended before the cut; again",
                      file=sys.stderr, flush=True)
                continue
            others = [e["seconds"] for e in result["endpoints"] if f"//{victim}:" not in e["location"]]
            outcomes = ["error" if "error" in e else "complete" for e in result["endpoints"]]
            timed.append({"victim": victim, "last_reader_s": max(ends), "last_other_reader_s": max(others),
                          "ends": ends, "outcomes": outcomes})
            print(f"[bench]   cut {len(timed)}/{rounds} ({victim}): last reader ended {max(ends):.2f}s after the "
                  f"cut, last reader of another host {max(others):.2f}s; {outcomes}", file=sys.stderr, flush=True)
        last = [t["last_reader_s"] for t in timed]
        others = [t["last_other_reader_s"] for t in timed]
        return {"rounds": timed, "median_s": statistics.median(last), "min_s": min(last), "max_s": max(last),
                "others_median_s": statistics.median(others), "others_max_s": max(others)}
    finally:
        cluster.bed.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hosts", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--cuts", type=int, default=5)
    parser.add_argument("--cut-rows", type=int, default=20_000_000)
    parser.add_argument("--reader", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--sql", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=300, help=argparse.SUPPRESS)
    parser.add_argument("--signal", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reader:
        print(json.dumps(reader(args.uri, args.sql, args.timeout, args.signal)), flush=True)
        return 0
    from tests.testbed import unavailable

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # the beds come down in their finally blocks

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    reason = unavailable()
    if reason:
        raise SystemExit(f"no multi-host test bed here: {reason}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"benchmark": "hosts", "timestamp": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                              "spread": [], "cut": None}
    with tempfile.TemporaryDirectory(prefix="flightsql-hosts-") as scratch:
        for hosts in args.hosts:
            print(f"[bench] {args.rows:,} rows on {hosts} hosts", file=sys.stderr, flush=True)
            report["spread"].append(spread(hosts, args.rows, args.runs, Path(scratch) / f"spread{hosts}"))
        if args.cuts:
            print(f"[bench] a host cut mid-stream, {args.cuts} rounds", file=sys.stderr, flush=True)
            report["cut"] = cuts(args.cuts, args.cut_rows, Path(scratch) / "cut")
    one = next((s for s in report["spread"] if s["hosts"] == 1), None)
    for s in report["spread"]:
        overhead = "" if one is None else f", {s['median_s'] / one['median_s']:.2f}x the time on 1 host"
        print(f"{s['hosts']} hosts: {s['median_s']:.2f}s median ({s['min_s']:.2f}-{s['max_s']:.2f}), "
              f"{s['rows_per_s'] / 1e6:.2f} M rows/s{overhead}; shares {s['share_per_host']}")
    if report["cut"]:
        c = report["cut"]
        print(f"host cut: last reader ended {c['median_s']:.2f}s after the cut (median; {c['min_s']:.2f}-{c['max_s']:.2f}); "
              f"readers of the other hosts {c['others_median_s']:.2f}s (max {c['others_max_s']:.2f})")
    out = RESULTS / f"hosts-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
