"""DDL, DML and prepared statements with bound parameters."""

from __future__ import annotations

import datetime
import decimal

import pytest

pytestmark = pytest.mark.integration


def test_ddl_and_dml_report_affected_rows(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS dml_t")
        cur.execute("CREATE TABLE dml_t (a INT, b STRING) USING parquet")
        cur.execute("INSERT INTO dml_t VALUES (1, 'x'), (2, 'y'), (3, NULL)")
        assert cur.rowcount == 3
        cur.execute("INSERT INTO dml_t SELECT id, CAST(id AS STRING) FROM range(10, 17)")
        assert cur.rowcount == 7
        cur.execute("SELECT count(*), count(b) FROM dml_t")
        assert cur.fetchone() == (10, 9)
        cur.execute("DROP TABLE dml_t")
        cur.execute("SHOW TABLES LIKE 'dml_t'")
        assert cur.fetchall() == []


def test_update_through_statement_update(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("CREATE OR REPLACE TEMPORARY VIEW v_upd AS SELECT 1 AS a")
        assert cur.adbc_statement is not None
        cur.adbc_statement.set_sql_query("DROP VIEW v_upd")
        # DDL writes no rows: 0, never -1 ("unknown"), which the JDBC driver takes for a query
        assert cur.adbc_statement.execute_update() == 0


@pytest.mark.parametrize(
    "value",
    [42, -7, 3.5, "hello", True, None, datetime.date(2024, 2, 29), decimal.Decimal("12.345"), b"\x00\x01"],
    ids=lambda v: type(v).__name__,
)
def test_bound_parameter_round_trips(conn, value) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("SELECT ? AS v", parameters=(value,))
        assert cur.fetchall() == [(value,)]


def test_parameters_in_filters(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM demo.trips WHERE city = ? AND minutes > ?", parameters=("Osaka", 45))
        (count,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM demo.trips WHERE city = 'Osaka' AND minutes > 45")
        assert cur.fetchone() == (count,)
        assert count > 0


def test_prepare_then_execute_repeatedly(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        for n in (3, 5, 8):
            cur.execute("SELECT count(*) FROM range(?)", parameters=(n,))
            assert cur.fetchone() == (n,)


def test_executemany_inserts_every_row(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS many_t")
        cur.execute("CREATE TABLE many_t (a BIGINT, b STRING) USING parquet")
        cur.executemany("INSERT INTO many_t VALUES (?, ?)", [(i, f"r{i}") for i in range(5)])
        cur.execute("SELECT a, b FROM many_t ORDER BY a")
        assert cur.fetchall() == [(i, f"r{i}") for i in range(5)]
        cur.execute("DROP TABLE many_t")


def test_prepared_schema_is_known_before_execution(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        schema = cur.adbc_execute_schema("SELECT trip_id, city FROM demo.trips")
        assert schema.names == ["trip_id", "city"]


def test_preparing_ddl_does_not_run_it(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.adbc_prepare("CREATE TABLE never_created (a INT)")
        cur.execute("SHOW TABLES LIKE 'never_created'")
        assert cur.fetchall() == []


def test_a_prepared_insert_announces_each_marker_as_its_column_type(conn) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS typed_insert (a INT, b STRING, c DECIMAL(10,2)) USING parquet")
        assert cur.adbc_prepare("INSERT INTO typed_insert (c, a) VALUES (?, ?)").types == [
            pa.decimal128(10, 2), pa.int32()]
        assert cur.adbc_prepare("INSERT INTO typed_insert VALUES (?, 'x', 1.5), (2, ?, ?)").types == [
            pa.int32(), pa.utf8(), pa.decimal128(10, 2)]
        assert cur.adbc_prepare("INSERT INTO typed_insert SELECT ?, 'x', ?").types == [pa.int32(), pa.decimal128(10, 2)]
        cur.execute("INSERT INTO typed_insert (c, a) VALUES (?, ?)", parameters=(decimal.Decimal("2.50"), 7))
        cur.execute("SELECT a, b, c FROM typed_insert")
        assert cur.fetchall() == [(7, None, decimal.Decimal("2.50"))]
        cur.execute("DROP TABLE typed_insert")


def test_wrong_parameter_count_is_invalid_argument(conn) -> None:  # type: ignore[no-untyped-def]
    import adbc_driver_manager

    with conn.cursor() as cur, pytest.raises(adbc_driver_manager.Error) as info:
        cur.execute("SELECT ? + ?", parameters=(1,))
        cur.fetchall()
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    assert "parameter" in str(info.value)
