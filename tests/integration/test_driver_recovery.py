"""A node whose Spark driver dies fails what it held, starts again, and serves."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.integration.conftest import PASSWORD, USER, _add_user, connect, start_node, stop_node, wait_until
from tests.integration.status import WatchedNode, status_url

pytestmark = pytest.mark.integration


def _spark_driver_pid(node_pid: int) -> int:
    """The JVM of the node's Spark driver: its child running SparkSubmit."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == node_pid and b"org.apache.spark.deploy.SparkSubmit" in command:
            return int(entry.name)
    raise AssertionError("the node has no Spark driver JVM")


def test_a_node_whose_spark_driver_dies_serves_again_by_itself(tmp_path: Path) -> None:
    users = tmp_path / "users"
    _add_user(users, USER, PASSWORD)
    node = start_node(tmp_path / "node", "--users", str(users), "--http-port", "0", "--log-format", "json",
                      "--status-open", "--conf", "spark.driver.memory=640m")
    try:
        conn = connect(node)
        cur = conn.cursor()
        cur.execute("SET spark.sql.shuffle.partitions=7")  # the session's state, recorded
        cur.execute("SELECT sum(id) FROM range(1000)")
        assert cur.fetchall() == [(499500,)]
        first_driver = _spark_driver_pid(node.process.pid)
        os.kill(first_driver, signal.SIGKILL)

        watched = WatchedNode(node, status_url(node), authorization=None)

        def restarts() -> list[float]:
            try:
                return [v for (name, _), v in watched.metrics().items() if name == "flightsql_driver_restarts_total"]
            except (AssertionError, OSError):  # the status server is between answers
                return []

        wait_until(lambda: restarts() == [1.0], timeout=180, what="the node to serve again")
        assert _spark_driver_pid(node.process.pid) != first_driver

        # the same connection (its token names its session): the session, restored from its record
        cur = conn.cursor()
        cur.execute("SET spark.sql.shuffle.partitions")
        assert cur.fetchall()[0][1] == "7"
        cur.execute("SELECT sum(id) FROM range(1000)")
        assert cur.fetchall() == [(499500,)]
        cur.close()
        conn.close()
        assert watched.get_json("api/status")["node"]["driver_restarts"] == 1
        assert restarts() == [1.0]
    finally:
        assert stop_node(node) == 0
