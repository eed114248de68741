"""Users are not the server: what a user tried, with only a password, to reach the node's
OS and JVM is refused (PERMISSION_DENIED naming the feature), nothing is read, written or
deleted, and the node keeps serving.  Ingest names are names, never paths."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flightsql.protocol import codec

from flightsql.protocol import commands as cmd
from tests.integration.conftest import OTHER_PASSWORD, OTHER_USER, RunningNode, _add_user, connect, flight_client
from tests.integration.conftest import start_node, stop_node

pytestmark = pytest.mark.integration


def _refused(node: RunningNode, sql: str) -> str:
    """Run ``sql`` as bob through ADBC (a prepared statement) and raw GetFlightInfo; both
    must be PERMISSION_DENIED. Returns the message."""
    with connect(node, OTHER_USER, OTHER_PASSWORD) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.execute(sql)
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHORIZED, info.value
    client, options = flight_client(node, OTHER_USER, OTHER_PASSWORD)
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=sql)))
    with pytest.raises(flight.FlightUnauthorizedError) as raw:
        client.get_flight_info(descriptor, options)
    assert "users do not act as the server" in str(raw.value)
    return str(info.value)


def _still_serving(node: RunningNode) -> None:
    with connect(node, OTHER_USER, OTHER_PASSWORD) as conn, conn.cursor() as cur:
        cur.execute("SELECT 40 + 2 AS answer")
        assert cur.fetchall() == [(42,)]


@pytest.mark.parametrize(
    ("sql", "feature"),
    [
        ("SELECT TRANSFORM(1) USING 'id' AS (out STRING)", "script-transform"),
        ("SELECT reflect('java.lang.System', 'exit', 0)", "reflection"),
        ("SELECT java_method('java.lang.System', 'exit', 0)", "reflection"),
        ("SELECT try_reflect('java.lang.System', 'exit', 0)", "reflection"),
        ("SELECT value FROM text.`/etc/passwd`", "path-sources"),
        ("SELECT * FROM parquet.`/tmp`", "path-sources"),
        ("SELECT * FROM csv.`file:///etc/hostname`", "path-sources"),
        ("ADD JAR /tmp/evil.jar", "resources"),
        ("ADD FILE /etc/passwd", "resources"),
        ("LOAD DATA LOCAL INPATH '/etc/passwd' INTO TABLE demo.trips", "resources"),
        ("CREATE FUNCTION evil AS 'com.example.Evil' USING JAR '/tmp/evil.jar'", "functions"),
        ("CREATE TEMPORARY FUNCTION evil AS 'org.apache.hadoop.hive.ql.udf.generic.GenericUDFReflect'", "functions"),
        ("SET spark.sql.runSQLOnFiles=true", "server-settings"),
        ("SET spark.hadoop.fs.defaultFS=file:///", "server-settings"),
        ("CREATE TABLE demo.sneaky USING jdbc OPTIONS (url 'jdbc:derby:/tmp/x;create=true', dbtable 't')",
         "external-locations"),
        ("CREATE TEMPORARY VIEW leak USING text OPTIONS (path '/etc')", "external-locations"),
    ],
)
def test_statements_that_reach_the_server_are_refused(node: RunningNode, sql: str, feature: str) -> None:
    message = _refused(node, sql)
    assert f"'{feature}'" in message and "--allow-server-access" in message
    _still_serving(node)


def test_reading_the_users_file_by_path_is_refused(node: RunningNode) -> None:
    users = node.work_dir / "users"
    assert users.exists()
    message = _refused(node, f"SELECT value FROM text.`{users}`")
    assert "argon2" not in message and "path-sources" in message


def test_nothing_is_written_outside_the_warehouse(node: RunningNode, tmp_path: Path) -> None:
    table_dir, out_dir, db_dir = tmp_path / "table", tmp_path / "out", tmp_path / "db"
    for sql in (
        f"CREATE TABLE demo.outside LOCATION '{table_dir}' AS SELECT 1 AS x",
        f"CREATE TABLE demo.outside2 (x INT) USING parquet OPTIONS (path '{table_dir}')",
        f"INSERT OVERWRITE DIRECTORY '{out_dir}' USING parquet SELECT 1",
        f"INSERT OVERWRITE LOCAL DIRECTORY '{out_dir}' SELECT 1",
        f"CREATE DATABASE outside_db LOCATION '{db_dir}'",
        f"ALTER TABLE demo.trips SET LOCATION '{table_dir}'",
    ):
        assert "external-locations" in _refused(node, sql), sql
    assert not table_dir.exists() and not out_dir.exists() and not db_dir.exists()
    _still_serving(node)


def test_ordinary_statements_still_work(node: RunningNode) -> None:
    """The guard refuses what reaches the server, nothing else: tables in the warehouse,
    settings of the session, temporary views, parameters."""
    with connect(node, OTHER_USER, OTHER_PASSWORD) as conn, conn.cursor() as cur:
        cur.execute("SET spark.sql.shuffle.partitions=3")
        cur.execute("CREATE TABLE IF NOT EXISTS default.guard_ok (x INT) USING parquet")
        cur.execute("INSERT INTO default.guard_ok VALUES (1), (2)")
        cur.execute("SELECT sum(x) FROM default.guard_ok WHERE x > ?", (0,))
        assert cur.fetchall() == [(3,)]
        cur.execute("DROP TABLE default.guard_ok")


def test_the_settings_guard_holds_for_session_options(node: RunningNode) -> None:
    import adbc_driver_flightsql.dbapi as flightsql

    with pytest.raises(adbc_driver_manager.Error) as info:
        with flightsql.connect(node.uri, db_kwargs={"username": OTHER_USER, "password": OTHER_PASSWORD},
                               conn_kwargs={"adbc.flight.sql.session.option.spark.sql.runSQLOnFiles": "true"}) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
    assert "spark.sql.runSQLOnFiles" in str(info.value)
    _still_serving(node)


# -- bulk ingest: names, not paths ------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "kwargs"),
    [
        ("../../../../../victim_dir", {"temporary": True}),
        ("../../x_trav", {}),
        ("/tmp/absolute_target", {}),
        ("a/b", {"temporary": True}),
        ("..", {}),
        ("bad\x01name", {}),
    ],
)
def test_ingest_into_a_path_is_invalid_and_touches_nothing(
    node: RunningNode, tmp_path: Path, table: str, kwargs: dict[str, object]
) -> None:
    victim_dir = Path("/tmp") / "victim_dir"
    victim_dir.mkdir(exist_ok=True)
    victim = victim_dir / "precious.txt"
    victim.write_bytes(b"do not touch")
    data = pa.table({"x": [1, 2, 3]})
    with connect(node, OTHER_USER, OTHER_PASSWORD) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.adbc_ingest(table, data, mode="create", **kwargs)
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT, info.value
    assert victim.read_bytes() == b"do not touch" and sorted(os.listdir(victim_dir)) == ["precious.txt"]
    for target in ("/tmp/absolute_target", "/tmp/x_trav", "/x_trav", "/victim_dir/part-0.parquet"):
        assert not Path(target).exists(), target
    _still_serving(node)


def test_temporary_ingest_still_works(node: RunningNode) -> None:
    data = pa.table({"x": [1, 2, 3]})
    with connect(node, OTHER_USER, OTHER_PASSWORD) as conn, conn.cursor() as cur:
        cur.adbc_ingest("guard_tmp", data, mode="create", temporary=True)
        cur.adbc_ingest("guard_tmp", data, mode="append", temporary=True)
        cur.execute("SELECT count(*), sum(x) FROM guard_tmp")
        assert cur.fetchall() == [(6, 12)]


# -- an operator who trusts the users -----------------------------------------------------


@pytest.fixture(scope="module")
def trusting_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    work = tmp_path_factory.mktemp("trusting")
    _add_user(work / "users", OTHER_USER, OTHER_PASSWORD)
    running = start_node(work / "node", "--users", str(work / "users"), "--allow-server-access", "script-transform",
                         "--conf", "spark.driver.memory=768m")
    yield running
    assert stop_node(running) == 0


def test_an_operator_can_allow_one_feature(trusting_node: RunningNode) -> None:
    with connect(trusting_node, OTHER_USER, OTHER_PASSWORD) as conn, conn.cursor() as cur:
        cur.execute("SELECT TRANSFORM(1) USING 'cat' AS (out STRING)")
        assert cur.fetchall() == [("1",)]
    # the others stay refused
    assert "'reflection'" in _refused(trusting_node, "SELECT reflect('java.lang.System', 'exit', 0)")


def test_an_unknown_feature_stops_the_node_with_one_line(tmp_path: Path) -> None:
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "flightsql.cli", "serve", "--work-dir", str(tmp_path), "--allow-server-access", "shell"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "unknown feature shell" in result.stderr and "Traceback" not in result.stderr
