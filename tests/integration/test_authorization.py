"""The authorization policy on a real node: who may read, change, create and drop which
tables, through ADBC as users use it, and what catalog listings show each user."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import adbc_driver_manager
import pyarrow as pa
import pytest

from tests.integration.conftest import RunningNode, _add_user, start_node, stop_node

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-pw-1", "bob": "bob-pw-22", "carol": "carol-pw-333"}
POLICY = {
    "groups": {"analysts": ["carol"]},
    "policies": [
        {"name": "operator", "users": ["alice"], "privileges": ["admin"]},
        {"name": "bob reads the demo", "users": ["bob"], "schema": "demo", "privileges": ["select"]},
        {"name": "bob's sandbox", "users": ["bob"], "schema": "sandbox_bob",
         "privileges": ["select", "modify", "create", "drop"]},
        {"name": "analysts read the demo", "groups": ["analysts"], "schema": "demo", "table": "t*",
         "privileges": ["select"]},
        {"name": "nobody but its owner reads the secret", "users": ["bob", "carol"], "schema": "demo",
         "table": "trips_secret", "privileges": ["select"], "deny": True},
    ],
}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    work = tmp_path_factory.mktemp("authorization")
    for user, password in USERS.items():
        _add_user(work / "users", user, password)
    (work / "policy.json").write_text(json.dumps(POLICY))
    node = start_node(work / "node", "--users", str(work / "users"), "--policy", str(work / "policy.json"),
                      "--demo", "--conf", "spark.driver.memory=768m")
    with _as(node, "alice") as cur:
        for sql in ("CREATE DATABASE hr", "CREATE TABLE hr.salaries AS SELECT 'alice' AS name, 100 AS pay",
                    "CREATE TABLE demo.trips_secret AS SELECT 1 AS x", "CREATE DATABASE sandbox_bob"):
            cur.execute(sql)
    yield node
    assert stop_node(node) == 0, node.log()[-3000:]


class _as:
    """A cursor of ``user``'s own connection."""

    def __init__(self, node: RunningNode, user: str) -> None:
        import adbc_driver_flightsql.dbapi as flightsql

        self.conn = flightsql.connect(node.uri, db_kwargs={"username": user, "password": USERS[user]})

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.cur = self.conn.cursor()
        return self.cur

    def __exit__(self, *exc: object) -> None:
        self.cur.close()
        self.conn.close()


def _denied(node: RunningNode, user: str, sql: str) -> str:
    with _as(node, user) as cur:
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.execute(sql)
            cur.fetchall()
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHORIZED, info.value
    return str(info.value)


def _rows(node: RunningNode, user: str, sql: str) -> list[tuple[object, ...]]:
    with _as(node, user) as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_a_grant_lets_a_user_read(secured: RunningNode) -> None:
    assert _rows(secured, "bob", "SELECT count(*) FROM demo.trips") == [(100_000,)]
    with _as(secured, "bob") as cur:  # USE is no alteration of the schema: it needs nothing
        cur.execute("USE demo")
        cur.execute("SELECT count(*) FROM trips")
        assert cur.fetchall() == [(100_000,)]


def test_what_no_policy_grants_is_refused_and_named(secured: RunningNode) -> None:
    message = _denied(secured, "bob", "SELECT * FROM hr.salaries")
    assert "bob may not select from spark_catalog.hr.salaries" in message
    # hidden in a subquery, a join, a CTE: the plan names it all the same
    for sql in ("SELECT * FROM demo.trips WHERE EXISTS (SELECT 1 FROM hr.salaries)",
                "WITH s AS (SELECT * FROM hr.salaries) SELECT * FROM s",
                "SELECT t.city FROM demo.trips t JOIN hr.salaries s ON t.city = s.name",
                "DESCRIBE TABLE hr.salaries", "SHOW CREATE TABLE hr.salaries"):
        assert "spark_catalog.hr.salaries" in _denied(secured, "bob", sql)


def test_a_denied_drop_drops_nothing(secured: RunningNode) -> None:
    assert "bob may not drop spark_catalog.demo.trips" in _denied(secured, "bob", "DROP TABLE demo.trips")
    assert "may not modify spark_catalog.demo.trips" in _denied(secured, "bob", "INSERT INTO demo.trips SELECT * FROM demo.trips LIMIT 1")
    assert "may not modify" in _denied(secured, "bob", "TRUNCATE TABLE demo.trips")
    assert "may not administer" in _denied(secured, "bob", "ALTER TABLE demo.trips RENAME TO demo.mine")
    assert _rows(secured, "alice", "SELECT count(*) FROM demo.trips") == [(100_000,)]


def test_a_sandbox_is_its_owners(secured: RunningNode) -> None:
    with _as(secured, "bob") as cur:
        cur.execute("CREATE TABLE sandbox_bob.notes AS SELECT 1 AS n")
        cur.execute("INSERT INTO sandbox_bob.notes VALUES (2)")
        cur.execute("SELECT sum(n) FROM sandbox_bob.notes")
        assert cur.fetchall() == [(3,)]
        cur.execute("DROP TABLE sandbox_bob.notes")
    assert "carol may not create" in _denied(secured, "carol", "CREATE TABLE sandbox_bob.x AS SELECT 1 AS n")


def test_groups_patterns_and_deny(secured: RunningNode) -> None:
    assert _rows(secured, "carol", "SELECT count(*) FROM demo.trips") == [(100_000,)]  # analysts, demo.t*
    assert "carol may not select from spark_catalog.demo.trips_secret" in _denied(
        secured, "carol", "SELECT * FROM demo.trips_secret")  # the pattern grants it, the deny wins
    assert "bob may not select from spark_catalog.demo.trips_secret" in _denied(
        secured, "bob", "SELECT * FROM demo.trips_secret")
    assert _rows(secured, "alice", "SELECT * FROM demo.trips_secret") == [(1,)]


def test_catalog_listings_show_only_what_a_user_may_see(secured: RunningNode) -> None:
    def objects(user: str) -> dict[str, set[str]]:
        with _as(secured, user) as cur:
            table = cur.connection.adbc_get_objects(depth="tables").read_all().to_pylist()
        return {s["db_schema_name"]: {t["table_name"] for t in s["db_schema_tables"] or []}
                for c in table for s in c["catalog_db_schemas"] or []}

    bob = objects("bob")
    assert "hr" not in bob and bob["demo"] >= {"trips"} and "trips_secret" not in bob["demo"]
    assert "sandbox_bob" in bob
    carol = objects("carol")
    assert set(carol) == {"demo"} and "trips" in carol["demo"] and "trips_secret" not in carol["demo"]
    assert {"hr", "demo", "sandbox_bob"} <= set(objects("alice"))


def test_ingest_needs_create_or_modify(secured: RunningNode) -> None:
    data = pa.table({"n": [1, 2, 3]})
    with _as(secured, "bob") as cur:
        cur.adbc_ingest("uploads", data, mode="create", db_schema_name="sandbox_bob")
        cur.adbc_ingest("uploads", data, mode="append", db_schema_name="sandbox_bob")
        cur.execute("SELECT count(*) FROM sandbox_bob.uploads")
        assert cur.fetchall() == [(6,)]
        with pytest.raises(adbc_driver_manager.Error, match="bob may not create spark_catalog.demo.uploads"):
            cur.adbc_ingest("uploads", data, mode="create", db_schema_name="demo")
        with pytest.raises(adbc_driver_manager.Error, match="bob may not modify spark_catalog.demo.trips"):
            cur.adbc_ingest("trips", pa.table({"x": [1]}), mode="append", db_schema_name="demo")


def test_a_prepared_statement_is_judged_again_where_it_runs(secured: RunningNode) -> None:
    """Prepared while the name meant a table bob may read, executed after it means another:
    bob reads what was judged, or is refused; never the other table."""
    with _as(secured, "bob") as cur:
        cur.connection.adbc_current_db_schema = "sandbox_bob"
        cur.execute("CREATE TABLE sandbox_bob.salaries AS SELECT 'bob' AS name, 1 AS pay")
        cur.adbc_prepare("SELECT * FROM salaries")
        cur.connection.adbc_current_db_schema = "hr"
        outcomes = []
        for _ in range(2):
            try:
                cur.execute("SELECT * FROM salaries")
                outcomes.append(cur.fetchall())
            except adbc_driver_manager.Error as exc:
                assert "spark_catalog.hr.salaries" in str(exc)
                outcomes.append("denied")
        assert all(outcome in ([("bob", 1)], "denied") for outcome in outcomes), outcomes
        assert outcomes[-1] == "denied"  # analysed again where it runs now: hr.salaries


def test_a_malformed_policy_stops_the_node_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "policy.json").write_text(json.dumps({"policies": [{"users": ["a"], "privileges": ["read"]}]}))
    result = subprocess.run(
        [sys.executable, "-m", "flightsql.cli", "serve", "--work-dir", str(tmp_path / "w"),
         "--policy", str(tmp_path / "policy.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "unknown privilege(s) read" in result.stderr
    assert "Traceback" not in result.stderr
