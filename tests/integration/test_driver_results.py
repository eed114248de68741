"""Statements that read no data are answered from the driver without a Spark task, with
exactly the rows and types Spark's own Arrow path gives."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flightmanager.manager import arrow_schema
from flightsql.server.driver_results import driver_table

pytestmark = pytest.mark.integration

WITHOUT_A_TASK = [
    "SELECT 1",
    "SELECT 2L AS b, 1.5D AS c, CAST(2.5 AS FLOAT) AS f, true AS t, 'é' AS s, NULL AS n, CAST(1 AS TINYINT) AS y,"
    " CAST(-2 AS SMALLINT) AS z, CAST(NULL AS STRING) AS ns",
    "SELECT 1 AS `we``ird`, 'x' AS b, NULL AS n, CAST(NULL AS INT) AS i, 2.50BD AS d, X'00FF' AS raw",
    "SELECT * FROM VALUES (1, 'x', DATE'2020-01-01', TIMESTAMP'2020-01-01 00:00:00', 1.5BD, array(1, 2),"
    " map('k', 1), named_struct('s', 1)), (2, NULL, NULL, NULL, NULL, NULL, NULL, named_struct('s', 2)) AS t(a, b, c, d, e, f, g, h)",
    "SELECT * FROM VALUES (TIMESTAMP'2024-03-10 02:30:00', TIMESTAMP_NTZ'2020-01-01 10:00:00') AS t(spring, wall)",
    "SELECT TIMESTAMP_NTZ'2020-01-01 10:00:00' AS wall, INTERVAL 1 DAY AS iv, DATE'2024-02-29' AS leap",
]


def _jobs(spark) -> int:  # type: ignore[no-untyped-def]
    return int(spark.sparkContext._jsc.sc().statusStore().jobsList(None).size())


@pytest.mark.parametrize("sql", WITHOUT_A_TASK)
def test_constant_statements_are_made_in_the_driver_as_spark_makes_them(spark, sql: str) -> None:  # type: ignore[no-untyped-def]
    df = spark.sql(sql)
    schema = arrow_schema(df)
    before = _jobs(spark)
    table = driver_table(df, 10_001, schema)
    assert _jobs(spark) == before, "no Spark job may run"
    assert table is not None
    expected = df.toArrow()
    assert table.schema == schema
    # Spark's Arrow labels instants UTC; the node serves the session's zone: the same instants
    assert table.cast(expected.schema).equals(expected)


@pytest.mark.parametrize("sql", ["SELECT rand() AS r", "SELECT explode(sequence(1, 5)) AS x",
                                 "SELECT TIMESTAMP'2024-01-01 12:00:00' AS ts"])
def test_statements_that_are_not_constant_are_left_to_a_job(spark, sql: str) -> None:  # type: ignore[no-untyped-def]
    df = spark.sql(sql)
    assert driver_table(df, 10_001, arrow_schema(df)) is None


def test_the_limit_applies(spark) -> None:  # type: ignore[no-untyped-def]
    df = spark.sql("SELECT * FROM VALUES (1), (2), (3) AS t(x)")
    table = driver_table(df, 2, arrow_schema(df))
    assert table is not None and table.num_rows == 2 and table.schema == pa.schema([("x", pa.int32(), False)])


def test_constants_are_made_in_the_session_s_time_zone_on_any_thread(spark) -> None:  # type: ignore[no-untyped-def]
    """A server thread is not the session's: whatever it makes must be what Spark makes."""
    import threading

    made: list[pa.Table | None] = []
    df = spark.sql("SELECT TIMESTAMP'2024-01-01 12:00:00' AS ts, DATE'2024-01-01' AS d, 'x' AS s")
    worker = threading.Thread(target=lambda: made.append(driver_table(df, 10, arrow_schema(df))))
    worker.start()
    worker.join(60)
    table = made[0] if made[0] is not None else df.toArrow()
    assert table.column("ts").cast(pa.int64())[0].as_py() == 1704128400 * 1_000_000  # 12:00 New York
