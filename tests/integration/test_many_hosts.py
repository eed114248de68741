"""The cluster on several hosts of their own (network namespaces, own addresses and
hostnames): locality, retries onto other hosts, a host cut off, a node killed.

Hosts: ZooKeeper and a Spark master on ``zk``; a Spark worker and a node on each of
``h1``..``h3``; the clients run on ``client``.  See tests/testbed.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.conftest import PASSWORD, USER, _add_user
from tests.testbed import HostCluster, HostBed, unavailable, wait

pytestmark = [pytest.mark.integration, pytest.mark.hosts]

REASON = unavailable()
HOSTS = ["h1", "h2", "h3"]
ROWS = 60_000
PARTITIONS = 12
#: rows carry the host that computed them (reflection: the operator allows it on this bed)
HOSTED_SQL = (f"SELECT id, reflect('java.net.InetAddress', 'getLocalHost') AS host FROM range(0, {ROWS}, 1, {PARTITIONS})")
EXPECTED_SUM = ROWS * (ROWS - 1) // 2
#: how long any reader may take to end after a fault
FAULT_BOUND = 10.0


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostCluster]:
    if REASON:
        pytest.skip(f"no multi-host test bed: {REASON}")
    work = tmp_path_factory.mktemp("hosts")
    users = work / "users"
    _add_user(users, USER, PASSWORD)
    bed = HostBed(len(HOSTS), work).up()
    try:
        cluster = HostCluster(bed, [
            "--users", str(users), "--allow-server-access", "reflection", "--result-ttl", "120",
            "--conf", "spark.driver.memory=512m",
            # speculative copies of slow tasks race the originals in every query here
            "--conf", "spark.speculation=true", "--conf", "spark.speculation.multiplier=1.5",
            "--conf", "spark.speculation.quantile=0.5",
        ]).start()
        yield cluster
    finally:
        bed.down()
        assert bed.leftovers() == [], "every namespace of the test bed is deleted"


def client(cluster: HostCluster, host: str, *argv: str, timeout: float = 300) -> dict[str, Any]:
    """Run a query from the client host against the node on ``host``."""
    done = cluster.bed.run("client", [
        sys.executable, "-m", "tests.hostclient", *argv, "--uri", cluster.nodes[host].uri,
        "--user", USER, "--password", PASSWORD], timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_exact(result: dict[str, Any]) -> None:
    endpoints = result["endpoints"]
    errors = [e["error"] for e in endpoints if "error" in e]
    assert errors == []
    assert sum(e["rows"] for e in endpoints) == ROWS
    assert sum(e["sum"] for e in endpoints) == EXPECTED_SUM
    assert sum(e["distinct"] for e in endpoints) == ROWS  # no id twice, within or across endpoints


def node_of(cluster: HostCluster, location: str) -> str:
    return next(h for h, n in cluster.nodes.items() if n.uri == location)


def test_each_host_s_partitions_are_served_by_its_own_node(hosts: HostCluster) -> None:
    result = client(hosts, "h1", "flight", HOSTED_SQL)
    assert_exact(result)
    endpoints = result["endpoints"]
    assert sorted(node_of(hosts, e["location"]) for e in endpoints) == HOSTS  # one endpoint per host
    for endpoint in endpoints:
        served_by = node_of(hosts, endpoint["location"])
        computed_on = {h.split("/")[0] for h in endpoint["hosts"]}
        assert computed_on <= {served_by}, f"the node on {served_by} served rows computed on {computed_on}"
    assert sum(1 for e in endpoints if e["rows"]) >= 2, "the executors of several hosts took part"


def test_adbc_reads_every_endpoint_at_its_own_host(hosts: HostCluster) -> None:
    result = client(hosts, "h2", "adbc", HOSTED_SQL)
    assert "error" not in result
    assert (result["rows"], result["sum"], result["distinct"]) == (ROWS, EXPECTED_SUM, ROWS)


def test_retries_on_other_hosts_and_speculation_keep_rows_exact(hosts: HostCluster) -> None:
    """Every partition's first attempt fails right after its push committed; Spark runs
    it again, often on another host, whose node drops the duplicate.  Speculative
    copies of slow tasks race the originals.  Every stream ends, rows exact."""
    slow = (f"SELECT id, reflect('java.net.InetAddress', 'getLocalHost') AS host, "
            f"IF(id % 5000 = 0, reflect('java.lang.Thread', 'sleep', 300L), '') AS pause "
            f"FROM range(0, {ROWS}, 1, {PARTITIONS})")
    try:
        result = client(hosts, "h3", "flight", slow, "--timeout", "120",
                        "--before", "SET spark.flightsql.test.failAfterCommit=true")
    finally:
        client(hosts, "h3", "flight", "SELECT 1 AS id", "--before", "SET spark.flightsql.test.failAfterCommit=false")
    assert_exact(result)
    assert all(e["seconds"] < 120 for e in result["endpoints"])
    logs = "".join((hosts.work / h / "node.log").read_text(errors="replace") for h in HOSTS)
    assert "dropped: another attempt of the partition won" in logs  # the retries' pushes were refused


def test_tasks_dying_mid_partition_are_retried_on_other_hosts_rows_exact(hosts: HostCluster) -> None:
    """A deterministic query is pushed in pieces; every task's first attempt stops after
    two of them. The retries, wherever they run, push the rest: the rows of one partition
    come from two hosts' nodes, each row once."""
    sql = f"SELECT id FROM range(0, {ROWS}, 1, {PARTITIONS})"
    try:
        result = client(hosts, "h2", "flight", sql, "--timeout", "120",
                        "--before", "SET spark.sql.execution.arrow.maxRecordsPerBatch=200",
                        "--before", "SET spark.flightsql.test.failMidPartition=true")
    finally:
        client(hosts, "h2", "flight", "SELECT 1 AS id", "--before", "SET spark.flightsql.test.failMidPartition=false")
    assert_exact(result)


def _cut_mid_stream(cluster: HostCluster, reader_host: str, cut: str) -> dict[str, Any]:
    """Start a slow query, wait until every endpoint delivered a batch, cut ``cut`` off,
    and return what each reader saw (``seconds`` counted from the cut)."""
    slow = (f"SELECT id, IF(id % 500 = 0, reflect('java.lang.Thread', 'sleep', 400L), '') AS pause "
            f"FROM range(0, {ROWS}, 1, {PARTITIONS})")
    process = subprocess.Popen(
        cluster.bed.command("client", [
            sys.executable, "-m", "tests.hostclient", "flight", slow, "--signal", "--timeout", "60",
            "--uri", cluster.nodes[reader_host].uri, "--user", USER, "--password", PASSWORD]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdin is not None
    try:
        assert process.stdout.readline().startswith("reading")
        cluster.bed.cut(cut)
        process.stdin.write("cut\n")
        process.stdin.flush()
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_a_host_cut_off_mid_stream_ends_every_reader_in_seconds_and_survivors_go_on(hosts: HostCluster) -> None:
    result = _cut_mid_stream(hosts, "h1", "h3")
    try:
        for endpoint in result["endpoints"]:
            at = node_of(hosts, endpoint["location"])
            if at == "h3":
                # our client's deadline and keepalive end even the reader of the lost host's endpoint
                assert "error" in endpoint
                continue
            assert endpoint["seconds"] < FAULT_BOUND, endpoint
            if "error" in endpoint:
                assert "UNAVAILABLE" in endpoint["error"] or "Unavailable" in endpoint["error"]
                assert "h3" in endpoint["error"], endpoint["error"]
            else:
                assert endpoint["rows"] > 0
        # a new query on each survivor right after: exact rows, from the surviving hosts alone
        for survivor in ("h1", "h2"):
            started = time.monotonic()
            again = client(hosts, survivor, "flight", HOSTED_SQL, "--timeout", "60")
            assert_exact(again)
            assert {node_of(hosts, e["location"]) for e in again["endpoints"]} == {"h1", "h2"}
            assert time.monotonic() - started < 60
    finally:
        hosts.bed.heal("h3")
    # the cut node's ZooKeeper session expired meanwhile: it comes back by itself
    wait(lambda: len(client(hosts, "h1", "flight", "SELECT 1 AS id")["endpoints"]) >= 1
         and {node_of(hosts, e["location"]) for e in client(hosts, "h1", "flight", HOSTED_SQL)["endpoints"]}
         == set(HOSTS), 90, "the node on h3 did not rejoin", step=2)


def test_a_node_killed_then_a_query_half_a_second_later_gives_exact_rows(hosts: HostCluster) -> None:
    victim = hosts.nodes["h2"]
    os.killpg(victim.process.pid, signal.SIGKILL)
    victim.process.wait(30)
    time.sleep(0.5)  # the scenario itself: a query half a second after the kill
    result = client(hosts, "h1", "flight", HOSTED_SQL, "--timeout", "60")
    assert_exact(result)
    assert "h2" not in {node_of(hosts, e["location"]) for e in result["endpoints"]}
    # the killed node left nothing running on its host (its embedded parts die with it)
    left = subprocess.run(["ip", "netns", "pids", hosts.bed.hosts["h2"].namespace], capture_output=True, text=True)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                for pid in left.stdout.split() if Path(f"/proc/{pid}").exists()]
    assert not [c for c in commands if "flightsql.cli" in c or "PythonGatewayServer" in c], commands
    restarted = hosts.start_node("h2")
    wait(restarted.ready, 180, "the node on h2 did not start again", 0.5)
