"""Apache Arrow's Flight SQL JDBC driver against a real node, as BI tools use it: connect
and browse (DatabaseMetaData), queries of every Spark type through ResultSet getters,
PreparedStatement with typed setters, updates and DDL with their counts, errors as
SQLException. docs/clients.md lists what the driver itself lacks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterator

import pytest

from tests.integration.conftest import RunningNode, connect
from tests.integration.jdbc import jdbc_connect, jdbc_rows, jvm  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def jdbc(jvm: Any, node: RunningNode) -> Iterator[Any]:  # noqa: F811 - the fixture
    with connect(node) as adbc, adbc.cursor() as cur:  # the tables are made as any client makes them
        cur.execute("CREATE SCHEMA IF NOT EXISTS jdbc")
        cur.execute("DROP TABLE IF EXISTS jdbc.typed")
        cur.execute(
            "CREATE TABLE jdbc.typed (i INT, l BIGINT, d DOUBLE, dec DECIMAL(12,3), s STRING, b BOOLEAN, "
            "dt DATE, ts TIMESTAMP, ntz TIMESTAMP_NTZ, bin BINARY, arr ARRAY<INT>) USING parquet")
        cur.execute(
            "INSERT INTO jdbc.typed VALUES (1, 9000000000, 2.5, 1234.567, 'tea', true, DATE'2026-01-02', "
            "TIMESTAMP'2026-01-02 03:04:05', TIMESTAMP_NTZ'2026-01-02 03:04:05', X'0102', array(1, 2)), "
            "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
        # Spark keeps NOT NULL for a view's columns (file tables' columns are always nullable)
        cur.execute("CREATE OR REPLACE VIEW jdbc.counted AS SELECT id, CAST(NULL AS INT) AS nothing FROM range(3)")
    connection = jdbc_connect(node)
    yield connection
    connection.close()


def test_database_metadata_as_a_bi_tool_browses_it(jdbc: Any) -> None:
    from java.sql import DatabaseMetaData, Types

    meta = jdbc.getMetaData()
    assert meta.getDatabaseProductName() == "Spark Flight SQL"
    assert meta.getDatabaseProductVersion()
    assert "spark_catalog" in [row["TABLE_CAT"] for row in jdbc_rows(meta.getCatalogs())]
    schemas = {(row["TABLE_CATALOG"], row["TABLE_SCHEM"]) for row in jdbc_rows(meta.getSchemas())}
    assert ("spark_catalog", "jdbc") in schemas and ("spark_catalog", "demo") in schemas
    assert [row["TABLE_SCHEM"] for row in jdbc_rows(meta.getSchemas(None, "jd%"))] == ["jdbc"]
    tables = jdbc_rows(meta.getTables(None, "jd%", "typ%", ["TABLE"]))
    assert [(t["TABLE_SCHEM"], t["TABLE_NAME"], t["TABLE_TYPE"]) for t in tables] == [("jdbc", "typed", "TABLE")]
    assert [t["TABLE_NAME"] for t in jdbc_rows(meta.getTables(None, "jdbc", "%", ["VIEW"]))] == ["counted"]
    assert {t["TABLE_NAME"] for t in jdbc_rows(meta.getTables(None, "jdbc", "%", None))} == {"typed", "counted"}
    assert {t["TABLE_TYPE"] for t in jdbc_rows(meta.getTableTypes())} >= {"TABLE", "VIEW"}

    columns = {c["COLUMN_NAME"]: c for c in jdbc_rows(meta.getColumns(None, "jdbc", "typed", "%"))}
    expected = {"i": Types.INTEGER, "l": Types.BIGINT, "d": Types.DOUBLE, "dec": Types.DECIMAL, "s": Types.VARCHAR,
                "b": Types.BOOLEAN, "dt": Types.DATE, "ts": Types.TIMESTAMP_WITH_TIMEZONE, "ntz": Types.TIMESTAMP,
                "bin": Types.VARBINARY, "arr": Types.ARRAY}
    assert {name: columns[name]["DATA_TYPE"] for name in expected} == expected
    assert columns["dec"]["COLUMN_SIZE"] == 12 and columns["dec"]["DECIMAL_DIGITS"] == 3
    assert [c["ORDINAL_POSITION"] for c in columns.values()] == list(range(1, 12))
    assert columns["s"]["NULLABLE"] == DatabaseMetaData.columnNullable and columns["s"]["IS_NULLABLE"] == "YES"
    view = {c["COLUMN_NAME"]: c for c in jdbc_rows(meta.getColumns(None, "jdbc", "counted", "%"))}
    assert view["id"]["NULLABLE"] == DatabaseMetaData.columnNoNulls and view["id"]["IS_NULLABLE"] == "NO"
    assert view["nothing"]["NULLABLE"] == DatabaseMetaData.columnNullable
    assert [c["COLUMN_NAME"] for c in jdbc_rows(meta.getColumns(None, "jdbc", "typed", "d%"))] == ["d", "dec", "dt"]

    # keys: none in Spark, but well-formed answers (a missing table is an error)
    assert jdbc_rows(meta.getPrimaryKeys(None, "jdbc", "typed")) == []
    assert jdbc_rows(meta.getImportedKeys(None, "jdbc", "typed")) == []
    assert jdbc_rows(meta.getExportedKeys(None, "jdbc", "typed")) == []

    assert meta.getIdentifierQuoteString() == "`"
    assert "LATERAL" in _listed(meta.getSQLKeywords())
    assert "abs" in _listed(meta.getNumericFunctions())
    assert "upper" in _listed(meta.getStringFunctions())
    assert not meta.supportsTransactions()
    assert meta.supportsColumnAliasing() and meta.supportsUnion() and meta.supportsUnionAll()
    assert meta.supportsGroupBy() and meta.supportsOuterJoins() and meta.supportsFullOuterJoins()
    assert meta.getSchemaTerm() and meta.getCatalogTerm()


def _listed(names: str) -> list[str]:
    return [name.strip() for name in names.split(",")]


def test_every_spark_type_through_the_result_set_getters(jdbc: Any) -> None:
    from java.time import Instant, OffsetDateTime

    result = jdbc.createStatement().executeQuery("SELECT * FROM jdbc.typed ORDER BY i")
    assert result.next()
    assert result.getInt("i") == 1 and result.getLong("l") == 9000000000 and result.getDouble("d") == 2.5
    assert Decimal(str(result.getBigDecimal("dec"))) == Decimal("1234.567")
    assert result.getString("s") == "tea" and result.getBoolean("b") is True
    assert str(result.getDate("dt")) == "2026-01-02"
    assert str(result.getTimestamp("ntz")) == "2026-01-02 03:04:05.0"  # wall-clock time, as written
    # TIMESTAMP is an instant, shown in the session's zone (America/New_York here)
    assert str(result.getObject("ts", OffsetDateTime)) == "2026-01-02T03:04:05-05:00"
    assert str(result.getObject("ts", Instant)) == "2026-01-02T08:04:05Z"
    assert str(result.getObject("ts")) == "2026-01-02 03:04:05.0"
    assert bytes(result.getBytes("bin")) == b"\x01\x02"
    assert list(result.getArray("arr").getArray()) == [1, 2]
    assert str(result.getObject("arr")) == "[1,2]"
    assert result.getObject("dec").toPlainString() == "1234.567"
    assert result.next()
    for column in ("l", "d", "dec", "s", "b", "dt", "ts", "ntz", "bin", "arr"):
        assert result.getObject(column) is None, column
    assert result.getLong("l") == 0 and result.wasNull()
    assert not result.next()
    result.close()


def test_get_timestamp_is_exact_when_the_session_zone_is_the_jvm_zone(jvm: Any, node: RunningNode) -> None:  # noqa: F811
    from java.util import TimeZone

    connection = jdbc_connect(node)  # a session of its own: the zone is set for it alone
    try:
        statement = connection.createStatement()
        statement.execute(f"SET TIME ZONE '{TimeZone.getDefault().getID()}'")
        result = statement.executeQuery("SELECT ts FROM jdbc.typed WHERE i = 1")
        assert result.next()
        assert str(result.getTimestamp("ts").toInstant()) == "2026-01-02T08:04:05Z"
        result.close()
    finally:
        connection.close()


def test_updates_and_ddl_run_once_and_return_counts(jdbc: Any) -> None:
    statement = jdbc.createStatement()
    assert statement.executeUpdate("CREATE SCHEMA IF NOT EXISTS jdbc_ddl") == 0
    assert statement.executeUpdate("DROP TABLE IF EXISTS jdbc_ddl.orders") == 0
    # run twice, a CREATE without IF NOT EXISTS would fail
    assert statement.executeUpdate("CREATE TABLE jdbc_ddl.orders (id INT, item STRING) USING parquet") == 0
    assert statement.executeUpdate("INSERT INTO jdbc_ddl.orders VALUES (1, 'tea'), (2, 'rice')") == 2
    assert not statement.execute("INSERT INTO jdbc_ddl.orders VALUES (3, 'salt')")
    assert statement.getUpdateCount() == 1
    insert = jdbc.prepareStatement("INSERT INTO jdbc_ddl.orders VALUES (?, ?)")
    insert.setInt(1, 4)
    insert.setString(2, "miso")
    assert insert.executeUpdate() == 1
    insert.setInt(1, 5)
    insert.setNull(2, 12)  # java.sql.Types.VARCHAR
    assert insert.executeUpdate() == 1
    insert.close()
    rows = jdbc_rows(statement.executeQuery("SELECT id, item FROM jdbc_ddl.orders ORDER BY id"))
    assert [(r["id"], r["item"]) for r in rows] == [(1, "tea"), (2, "rice"), (3, "salt"), (4, "miso"), (5, None)]
    assert statement.executeUpdate("DROP TABLE jdbc_ddl.orders") == 0
    assert statement.executeUpdate("DROP SCHEMA jdbc_ddl") == 0
    statement.close()


def test_errors_are_sql_exceptions(jdbc: Any) -> None:
    from java.sql import SQLException

    statement = jdbc.createStatement()
    with pytest.raises(SQLException) as caught:
        statement.executeQuery("SELECT * FROM jdbc.no_such_table")
    assert "TABLE_OR_VIEW_NOT_FOUND" in str(caught.value.getMessage())
    with pytest.raises(SQLException) as syntax:
        statement.executeQuery("SELEC 1")
    assert "PARSE_SYNTAX_ERROR" in str(syntax.value.getMessage())
    with pytest.raises(SQLException) as twice:
        statement.executeUpdate("CREATE TABLE jdbc.typed (i INT) USING parquet")
    assert "ALREADY_EXISTS" in str(twice.value.getMessage())
    assert jdbc_rows(statement.executeQuery("SELECT 1 AS one")) == [{"one": 1}]  # the connection goes on
    statement.close()


def test_a_wrong_password_is_refused_as_an_sql_exception(jvm: Any, node: RunningNode) -> None:  # noqa: F811
    from java.sql import SQLException

    with pytest.raises(SQLException) as caught:
        jdbc_connect(node, password="not-the-password")
    assert "UNAUTHENTICATED" in str(caught.value.getMessage())  # the driver sets no SQLState


def test_the_catalog_property_sets_the_session_catalog(jvm: Any, node: RunningNode) -> None:  # noqa: F811
    from java.sql import SQLException

    connection = jdbc_connect(node, catalog="spark_catalog")
    rows = jdbc_rows(connection.createStatement().executeQuery("SELECT current_catalog() AS c"))
    assert rows == [{"c": "spark_catalog"}]
    try:
        connection.close()
    except SQLException as error:  # driver 18.3.0 ends the session twice on close, the second on a closed channel
        assert "Channel shutdown invoked" in str(error.getMessage())
    with pytest.raises(SQLException) as unknown:
        jdbc_connect(node, catalog="no_such_catalog")
    assert "no_such_catalog" in str(unknown.value.getMessage()) or "catalog" in str(unknown.value.getMessage())


def test_a_result_of_many_batches_reads_whole(jdbc: Any) -> None:
    result = jdbc.createStatement().executeQuery(
        "SELECT id, CAST(id AS STRING) AS text FROM range(0, 200000, 1, 4)")
    total, count = 0, 0
    while result.next():
        total += result.getLong(1)
        if count % 997 == 0:
            assert result.getString(2) == str(result.getLong(1))
        count += 1
    result.close()
    assert (count, total) == (200000, sum(range(200000)))


def test_prepared_queries_bind_typed_values(jdbc: Any) -> None:
    from java.math import BigDecimal
    from java.sql import Date, Timestamp, Types

    query = jdbc.prepareStatement(
        "SELECT i, l + ? AS shifted, s FROM jdbc.typed WHERE i >= ? AND (dec > ? OR dec IS NULL) AND s = ? ORDER BY i")
    query.setLong(1, 1)
    query.setInt(2, 1)
    query.setBigDecimal(3, BigDecimal("1.0"))
    query.setString(4, "tea")
    assert [(r["i"], r["shifted"], r["s"]) for r in jdbc_rows(query.executeQuery())] == [(1, 9000000001, "tea")]
    query.setString(4, "coffee")  # the same statement again, with another value
    assert jdbc_rows(query.executeQuery()) == []
    stamped = jdbc.prepareStatement("SELECT count(*) AS n FROM jdbc.typed WHERE ts < ? AND dt = ?")
    stamped.setTimestamp(1, Timestamp.valueOf("2030-01-01 00:00:00"))
    stamped.setDate(2, Date.valueOf("2026-01-02"))
    assert jdbc_rows(stamped.executeQuery()) == [{"n": 1}]
    nothing = jdbc.prepareStatement("SELECT count(*) AS n FROM jdbc.typed WHERE l = ?")
    nothing.setNull(1, Types.BIGINT)
    assert jdbc_rows(nothing.executeQuery()) == [{"n": 0}]
    for statement in (query, stamped, nothing):
        statement.close()
