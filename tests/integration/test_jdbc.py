"""Apache Arrow's Flight SQL JDBC driver against a real node, as BI tools use it: queries
through ResultSet getters, PreparedStatement with typed setters, errors as SQLException.

The driver runs in a JVM of the test process (JPype); its jar is fetched by
dev/jdbc-driver.sh (see docs/decisions/0005-jdbc-tests.md)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.conftest import PASSWORD, USER, RunningNode, connect

pytestmark = pytest.mark.integration

JARS = sorted((Path(__file__).resolve().parents[2] / ".cache" / "jdbc").glob("flight-sql-jdbc-driver-*.jar"))


@pytest.fixture(scope="module")
def jvm() -> Any:
    jpype = pytest.importorskip("jpype")
    import jpype.config
    import jpype.imports  # noqa: F401 - lets Python import Java packages (java.sql, ...)
    if not JARS:
        pytest.skip("the Flight SQL JDBC driver is not in .cache/jdbc (dev/jdbc-driver.sh fetches it)")
    # the driver's gRPC threads never end: a JVM destroyed at exit would wait for them forever
    jpype.config.destroy_jvm = False
    if not jpype.isJVMStarted():
        # the driver's Arrow memory needs java.nio opened to it on Java 17
        jpype.startJVM("--add-opens=java.base/java.nio=ALL-UNNAMED", classpath=[str(JARS[-1])],
                       convertStrings=True)
    return jpype


def _connect(node: RunningNode, user: str = USER, password: str = PASSWORD, **properties: str) -> Any:
    from java.sql import DriverManager
    from java.util import Properties

    props = Properties()
    props.setProperty("user", user)
    props.setProperty("password", password)
    props.setProperty("useEncryption", "false")
    for key, value in properties.items():
        props.setProperty(key, value)
    hostport = node.uri.split("://", 1)[1]
    return DriverManager.getConnection(f"jdbc:arrow-flight-sql://{hostport}", props)


@pytest.fixture(scope="module")
def jdbc(jvm: Any, node: RunningNode) -> Iterator[Any]:
    with connect(node) as adbc, adbc.cursor() as cur:  # the table is made as any client makes one
        cur.execute("CREATE SCHEMA IF NOT EXISTS jdbc")
        cur.execute("DROP TABLE IF EXISTS jdbc.typed")
        cur.execute(
            "CREATE TABLE jdbc.typed (i INT NOT NULL, l BIGINT, d DOUBLE, dec DECIMAL(12,3), s STRING, b BOOLEAN, "
            "dt DATE, ts TIMESTAMP, ntz TIMESTAMP_NTZ, bin BINARY, arr ARRAY<INT>) USING parquet")
        cur.execute(
            "INSERT INTO jdbc.typed VALUES (1, 9000000000, 2.5, 1234.567, 'tea', true, DATE'2026-01-02', "
            "TIMESTAMP'2026-01-02 03:04:05', TIMESTAMP_NTZ'2026-01-02 03:04:05', X'0102', array(1, 2)), "
            "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
    connection = _connect(node)
    yield connection
    connection.close()


def _rows(result_set: Any) -> list[dict[str, Any]]:
    meta = result_set.getMetaData()
    labels = [meta.getColumnLabel(i + 1) for i in range(meta.getColumnCount())]
    rows = []
    while result_set.next():
        rows.append({label: result_set.getObject(i + 1) for i, label in enumerate(labels)})
    result_set.close()
    return rows








def test_errors_are_sql_exceptions(jdbc: Any) -> None:
    from java.sql import SQLException

    statement = jdbc.createStatement()
    with pytest.raises(SQLException) as caught:
        statement.executeQuery("SELECT * FROM jdbc.no_such_table")
    assert "TABLE_OR_VIEW_NOT_FOUND" in str(caught.value.getMessage())
    with pytest.raises(SQLException) as syntax:
        statement.executeQuery("SELEC 1")
    assert "PARSE_SYNTAX_ERROR" in str(syntax.value.getMessage())
    assert _rows(statement.executeQuery("SELECT 1 AS one")) == [{"one": 1}]  # the connection goes on


def test_a_wrong_password_is_refused_as_an_sql_exception(jvm: Any, node: RunningNode) -> None:
    from java.sql import SQLException

    with pytest.raises(SQLException) as caught:
        _connect(node, password="not-the-password")
    assert "UNAUTHENTICATED" in str(caught.value.getMessage())




def test_a_result_of_many_batches_reads_whole(jdbc: Any) -> None:
    result = jdbc.createStatement().executeQuery(
        "SELECT id, CAST(id AS STRING) AS text FROM range(0, 200000, 1, 4)")
    total, count = 0, 0
    while result.next():
        total += result.getLong(1)
        count += 1
    result.close()
    assert (count, total) == (200000, sum(range(200000)))


def test_dates_and_timestamps_compare_as_instants(jdbc: Any) -> None:
    result = jdbc.createStatement().executeQuery("SELECT DATE'2026-06-30' AS d")
    assert result.next() and result.getDate(1).toLocalDate().toString() == str(datetime.date(2026, 6, 30))
    result.close()


def test_prepared_queries_bind_typed_values(jdbc: Any) -> None:
    from java.math import BigDecimal
    from java.sql import Date, Timestamp, Types

    query = jdbc.prepareStatement(
        "SELECT i, l + ? AS shifted, s FROM jdbc.typed WHERE i >= ? AND (dec > ? OR dec IS NULL) AND s = ? ORDER BY i")
    query.setLong(1, 1)
    query.setInt(2, 1)
    query.setBigDecimal(3, BigDecimal("1.0"))
    query.setString(4, "tea")
    assert [(r["i"], r["shifted"], r["s"]) for r in _rows(query.executeQuery())] == [(1, 9000000001, "tea")]
    stamped = jdbc.prepareStatement("SELECT count(*) AS n FROM jdbc.typed WHERE ts < ? AND dt = ?")
    stamped.setTimestamp(1, Timestamp.valueOf("2030-01-01 00:00:00"))
    stamped.setDate(2, Date.valueOf("2026-01-02"))
    assert _rows(stamped.executeQuery()) == [{"n": 1}]
    nothing = jdbc.prepareStatement("SELECT count(*) AS n FROM jdbc.typed WHERE l = ?")
    nothing.setNull(1, Types.BIGINT)
    assert _rows(nothing.executeQuery()) == [{"n": 0}]
    for statement in (query, stamped, nothing):
        statement.close()
