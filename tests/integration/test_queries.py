"""Queries through ADBC's DB-API, compared with what Spark itself returns."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.integration.conftest import connect

pytestmark = pytest.mark.integration

ALL_TYPES = """
SELECT id,
       CAST(id AS TINYINT) AS t8, CAST(id AS SMALLINT) AS t16, CAST(id AS INT) AS t32,
       id * 1000000000000 AS t64,
       CAST(id AS FLOAT) / 3 AS f32, CAST(id AS DOUBLE) / 7 AS f64,
       CAST(id * 12345.678 AS DECIMAL(18, 3)) AS dec18, CAST(id AS DECIMAL(38, 10)) AS dec38,
       CONCAT('row-', id, '-ü✓') AS str, CAST(CONCAT('b', id) AS BINARY) AS bin,
       id % 2 = 0 AS flag,
       DATE'2024-02-28' + CAST(id AS INT) AS day,
       TIMESTAMP'2024-03-10 01:30:00' + make_interval(0, 0, 0, 0, CAST(id AS INT), 0, 0) AS ts,
       TIMESTAMP_NTZ'2024-03-10 01:30:00' + make_interval(0, 0, 0, 0, CAST(id AS INT), 0, 0) AS ts_ntz,
       ARRAY(id, id + 1, NULL) AS arr,
       MAP('k', id, 'n', NULL) AS m,
       NAMED_STRUCT('a', id, 'b', CONCAT('x', id), 'c', ARRAY(NAMED_STRUCT('d', id))) AS st
FROM range(50)
"""


def _with_nulls(sql: str) -> str:
    """Every column NULL on every third row."""
    return f"SELECT {', '.join(f'CASE WHEN id % 3 = 0 THEN NULL ELSE {c} END AS {c}' for c in _columns())} FROM ({sql})"


def _columns() -> list[str]:
    return ["id", "t8", "t16", "t32", "t64", "f32", "f64", "dec18", "dec38", "str", "bin", "flag",
            "day", "ts", "ts_ntz", "arr", "m", "st"]


def _fetch(conn, sql: str) -> pa.Table:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(table.column_names[0], "ascending")])


def _instants_in_utc(table: pa.Table) -> pa.Table:
    """Spark's own toArrow() labels instants UTC; we label them with the session time
    zone, as the Flight SQL type says. The instants must be the same."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz:
            table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp(field.type.unit, "UTC")))
    return table


def test_every_type_matches_spark(conn, spark) -> None:  # type: ignore[no-untyped-def]
    fetched = _fetch(conn, ALL_TYPES)
    assert fetched.schema.field("ts").type.tz == "America/New_York"
    ours = _instants_in_utc(_sorted(fetched))
    theirs = _instants_in_utc(_sorted(spark.sql(ALL_TYPES).toArrow()))
    assert ours.num_rows == 50
    assert ours.schema.types == theirs.schema.types
    assert ours.column_names == theirs.column_names
    for name in ours.column_names:
        assert ours.column(name).to_pylist() == theirs.column(name).to_pylist(), name


def test_nulls_everywhere(conn, spark) -> None:  # type: ignore[no-untyped-def]
    # Spark's own toArrow() cannot build this result (null structs whose fields are
    # declared non-null), so the expectation is Spark's plain answer with the nulls applied.
    ours = _instants_in_utc(_sorted(_fetch(conn, _with_nulls(ALL_TYPES))))
    plain = _instants_in_utc(_sorted(spark.sql(ALL_TYPES).toArrow()))
    assert ours.num_rows == 50
    ids = plain.column("id").to_pylist()
    for name in ours.column_names:
        expected = [None if i % 3 == 0 else v for i, v in zip(ids, plain.column(name).to_pylist())]
        got = ours.column(name).to_pylist()
        # rows sort with the NULL id first; compare as multisets keyed by position of id
        assert sorted(map(repr, got)) == sorted(map(repr, expected)), name


def test_timestamps_carry_the_session_time_zone(conn) -> None:  # type: ignore[no-untyped-def]
    table = _fetch(conn, "SELECT TIMESTAMP'2024-01-01 12:00:00' AS ts, TIMESTAMP_NTZ'2024-01-01 12:00:00' AS ntz")
    assert table.schema.field("ts").type == pa.timestamp("us", tz="America/New_York")
    assert table.schema.field("ntz").type == pa.timestamp("us")
    # 12:00 in New York is 17:00 UTC
    assert table.column("ts").cast(pa.int64())[0].as_py() == 1704128400 * 1_000_000


def test_a_kept_answer_is_the_same_answer_in_the_session_time_zone(conn) -> None:  # type: ignore[no-untyped-def]
    """The second ask of a small query is made in the driver and kept, the third served
    kept: all three are the first one, schema (time zone) included."""
    sql = "SELECT trip_id, CAST(trip_date AS TIMESTAMP) AS ts, fare FROM demo.trips WHERE trip_id < 5"
    first, second, third = (_fetch(conn, sql).sort_by("trip_id") for _ in range(3))
    assert first.schema.field("ts").type == pa.timestamp("us", tz="America/New_York")
    assert second.equals(first) and third.equals(first)


def test_large_result_streams_completely(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("SELECT id, id * 2 AS doubled, CAST(id AS STRING) AS label FROM range(2000000)")
        reader = cur.fetch_record_batch()
        rows = total = 0
        for batch in reader:
            rows += batch.num_rows
            total += pa.compute.sum(batch.column("id")).as_py() or 0
    assert rows == 2_000_000
    assert total == sum(range(2_000_000))


def test_order_by_is_kept(conn) -> None:  # type: ignore[no-untyped-def]
    table = _fetch(conn, "SELECT id FROM range(0, 300000, 1, 8) ORDER BY id DESC")
    ids = table.column("id").to_pylist()
    assert ids == list(range(299999, -1, -1))


def test_empty_result_has_its_schema(conn) -> None:  # type: ignore[no-untyped-def]
    table = _fetch(conn, "SELECT id, CAST(id AS STRING) AS s FROM range(10) WHERE id < 0")
    assert table.num_rows == 0
    assert table.schema.names == ["id", "s"]
    assert table.schema.types == [pa.int64(), pa.string()]


def test_commands_with_output_return_rows(conn) -> None:  # type: ignore[no-untyped-def]
    table = _fetch(conn, "SHOW TABLES IN demo")
    assert "trips" in table.column("tableName").to_pylist()
    plan = _fetch(conn, "EXPLAIN SELECT * FROM demo.trips")
    assert "trips" in plan.column(0)[0].as_py()


def test_demo_table_answers(conn) -> None:  # type: ignore[no-untyped-def]
    table = _fetch(conn, "SELECT city, count(*) AS n FROM demo.trips GROUP BY city ORDER BY city")
    assert table.column("city").to_pylist() == ["Berlin", "Lisbon", "Osaka", "Quito", "Tunis"]
    assert sum(table.column("n").to_pylist()) == 100_000


def test_runtime_failure_is_reported_not_hung(conn) -> None:  # type: ignore[no-untyped-def]
    import adbc_driver_manager

    with pytest.raises(adbc_driver_manager.Error) as info:
        _fetch(conn, "SELECT assert_true(id < 5, 'id too large') FROM range(10)")
    assert "id too large" in str(info.value)
    # the node keeps serving
    assert _fetch(conn, "SELECT 1 AS one").column("one").to_pylist() == [1]


def test_bad_sql_is_invalid_argument(conn) -> None:  # type: ignore[no-untyped-def]
    import adbc_driver_manager

    with pytest.raises(adbc_driver_manager.ProgrammingError) as info:
        _fetch(conn, "SELEC 1")
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    assert "PARSE_SYNTAX_ERROR" in str(info.value)
    assert "Traceback" not in str(info.value)


def test_missing_table_is_not_found(conn) -> None:  # type: ignore[no-untyped-def]
    import adbc_driver_manager

    with pytest.raises(adbc_driver_manager.Error) as info:
        _fetch(conn, "SELECT * FROM no_such_table_anywhere")
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND
    assert "TABLE_OR_VIEW_NOT_FOUND" in str(info.value)


def test_many_clients_at_once(node) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    def run(i: int) -> int:
        with connect(node) as connection, connection.cursor() as cur:
            cur.execute(f"SELECT sum(id) AS s FROM range({i * 1000})")
            return cur.fetchone()[0] or 0

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(run, range(1, 7)))
    assert results == [sum(range(i * 1000)) for i in range(1, 7)]
