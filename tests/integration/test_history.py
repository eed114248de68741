"""Query history: kept after results expire and across a restart, within its bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import PASSWORD, USER, _add_user, connect, start_node, stop_node, wait_until
from tests.integration.status import WatchedNode, status_url

pytestmark = pytest.mark.integration


def test_history_outlives_results_and_restarts_and_keeps_its_bounds(tmp_path: Path) -> None:
    users = tmp_path / "users"
    _add_user(users, USER, PASSWORD)
    args = ("--users", str(users), "--http-port", "0", "--log-format", "json", "--status-open",
            "--result-ttl", "1", "--history-size", "3", "--conf", "spark.driver.memory=640m")
    node = start_node(tmp_path / "node", *args)
    try:
        sqls = [f"SELECT id, {i} AS run FROM range(0, {1000 * (i + 1)}, 1, 2)" for i in range(4)]
        with connect(node) as conn, conn.cursor() as cur:
            for sql in sqls:
                cur.execute(sql)
                assert cur.fetch_arrow_table().num_rows == 1000 * (sqls.index(sql) + 1)
        watched = WatchedNode(node, status_url(node), authorization=None)

        def expired() -> list[dict]:  # type: ignore[type-arg]
            return [q for q in watched.get_json("api/status")["recent"] if q["sql"] in sqls and q["state"] == "EXPIRED"]

        wait_until(lambda: len(expired()) == 3, timeout=60, what="the results to expire into the history")
    finally:
        assert stop_node(node) == 0

    node = start_node(tmp_path / "node", *args)  # the same work directory: the same embedded ZooKeeper
    try:
        watched = WatchedNode(node, status_url(node), authorization=None)
        kept = {q["sql"]: q for q in watched.get_json("api/status")["recent"] if q["sql"] in sqls}
        assert sorted(kept) == sorted(sqls[1:])  # the oldest went: at most three are kept
        for i, sql in enumerate(sqls[1:], start=1):
            query = kept[sql]
            assert (query["state"], query["outcome"], query["user"]) == ("EXPIRED", "FINISHED", USER)
            assert query["rows_served"] == 1000 * (i + 1)
            assert query["finished"] >= query["created"]
    finally:
        assert stop_node(node) == 0
