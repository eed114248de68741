"""Pushed filters as SQL: exact translations, and refusals where a translation would not be exact.

Translations are also run on SQLite, an ANSI-quoting engine, to check that the SQL
selects exactly the rows Spark's filter means.
"""

from __future__ import annotations

import datetime
import decimal
import sqlite3
from typing import Any

import pytest
from pyspark.sql.datasource import (
    EqualNullSafe,
    EqualTo,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNotNull,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Not,
    StringContains,
    StringEndsWith,
    StringStartsWith,
)

from datasource.options import TableName
from datasource.sql import Dialect, FilterTranslator, ScanSql, literal

SPARK = Dialect("`")
ANSI = Dialect('"')
COLUMNS = ("id", "name", "day", "price", "flag", "odd`col")


def _spark(f: Any) -> str | None:
    return FilterTranslator(SPARK, COLUMNS).translate(f)


@pytest.mark.parametrize(
    ("spark_filter", "sql"),
    [
        (EqualTo(("id",), 3), "`id` = 3"),
        (GreaterThan(("id",), -2), "`id` > -2"),
        (GreaterThanOrEqual(("price",), 1.5), "`price` >= 1.5"),
        (LessThan(("price",), decimal.Decimal("10.25")), "`price` < 10.25"),
        (LessThanOrEqual(("day",), datetime.date(2024, 2, 29)), "`day` <= DATE '2024-02-29'"),
        (EqualTo(("flag",), True), "`flag` = TRUE"),
        (EqualTo(("name",), "Osaka"), "`name` = 'Osaka'"),
        (EqualTo(("odd`col",), 1), "`odd``col` = 1"),
        (In(("id",), (1, 2, 3)), "`id` IN (1, 2, 3)"),
        (IsNull(("name",)), "`name` IS NULL"),
        (IsNotNull(("name",)), "`name` IS NOT NULL"),
        (Not(EqualTo(("id",), 3)), "NOT (`id` = 3)"),
        (EqualNullSafe(("id",), 3), "(`id` IS NOT NULL AND `id` = 3)"),
        (EqualNullSafe(("id",), None), "`id` IS NULL"),
        (StringStartsWith(("name",), "Os"), "`name` LIKE 'Os%' ESCAPE '!'"),
        (StringEndsWith(("name",), "ka"), "`name` LIKE '%ka' ESCAPE '!'"),
        (StringContains(("name",), "50%_off!"), "`name` LIKE '%50!%!_off!!%' ESCAPE '!'"),
    ],
)
def test_exact_translations(spark_filter: Any, sql: str) -> None:
    assert _spark(spark_filter) == sql


@pytest.mark.parametrize(
    "spark_filter",
    [
        EqualTo(("name",), "it's"),  # a quote is written differently by different dialects
        EqualTo(("name",), "C:\\temp"),  # a backslash is an escape in some dialects only
        StringStartsWith(("name",), "it's"),
        EqualTo(("created",), 1),  # not a column of the result
        EqualTo(("address", "city"), "Osaka"),  # a nested field
        EqualTo(("price",), float("nan")),
        GreaterThan(("price",), float("inf")),
        EqualTo(("price",), decimal.Decimal("NaN")),
        EqualTo(("at",), datetime.datetime(2024, 1, 1, 12, 0)),  # time zone dependent
        EqualTo(("id",), [1, 2]),  # an array literal
        EqualTo(("id",), b"\x00"),
        In(("id",), (1, None)),
        In(("id",), ()),
        Not(EqualTo(("name",), "it's")),
    ],
)
def test_untranslatable_filters_stay_in_spark(spark_filter: Any) -> None:
    assert _spark(spark_filter) is None


def test_literals() -> None:
    assert literal(False) == "FALSE"  # a bool, although bool is an int
    assert literal(10**20) == "100000000000000000000"
    assert literal(1e-07) == "1e-07"
    assert literal(datetime.date(1, 1, 1)) == "DATE '0001-01-01'"
    assert literal("") == "''"
    assert literal(None) is None


def test_identifier_quoting() -> None:
    assert SPARK.quote("a b") == "`a b`"
    assert ANSI.quote('say "hi"') == '"say ""hi"""'
    assert Dialect("[").quote("Order]Details") == "[Order]]Details]"
    assert SPARK.table(TableName("trips", "demo", "spark_catalog")) == "`spark_catalog`.`demo`.`trips`"


def test_scan_sql() -> None:
    query = "SELECT * FROM t -- all of it"
    assert ScanSql(query=query).render(None) == query  # untouched when nothing is added
    assert ScanSql(query=query).needs_dialect() is False
    wrapped = ScanSql(query=query, columns=("a",), conditions=("`a` > 1", "`a` < 5")).render(SPARK)
    assert wrapped == "SELECT `a` FROM (\nSELECT * FROM t -- all of it\n) AS flightsql_scan WHERE (`a` > 1) AND (`a` < 5)"
    assert ScanSql(table=TableName("t", "s")).render(ANSI) == 'SELECT * FROM "s"."t"'
    with pytest.raises(ValueError):
        ScanSql(table=TableName("t")).render(None)


ROWS = [
    (1, "Osaka", "2024-01-05", 1.5),
    (2, "50%_off!", "2024-03-01", 10.0),
    (3, "500 offers", "2023-12-31", -1.0),
    (4, None, None, None),
    (5, "osaka", "2024-01-01", 2.5),
]


@pytest.mark.parametrize(
    ("spark_filter", "ids"),
    [
        (StringStartsWith(("name",), "Os"), [1]),  # case-sensitive, like Spark
        (StringContains(("name",), "50%_"), [2]),  # % and _ match themselves
        (StringEndsWith(("name",), "!"), [2]),
        (Not(EqualTo(("name",), "Osaka")), [2, 3, 5]),  # NULL stays out, like Spark
        (Not(EqualNullSafe(("name",), "Osaka")), [2, 3, 4, 5]),  # null-safe: NULL is "not equal"
        (EqualNullSafe(("name",), None), [4]),
        (In(("id",), (2, 5, 9)), [2, 5]),
        (GreaterThanOrEqual(("price",), 1.5), [1, 2, 5]),
        (IsNull(("price",)), [4]),
    ],
)
def test_translations_select_what_spark_means_on_an_ansi_engine(spark_filter: Any, ids: list[int]) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("PRAGMA case_sensitive_like = ON")  # Spark's LIKE is case-sensitive
    db.execute('CREATE TABLE t ("id" INTEGER, "name" TEXT, "day" TEXT, "price" REAL)')
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", ROWS)
    condition = FilterTranslator(ANSI, ("id", "name", "day", "price")).translate(spark_filter)
    assert condition is not None
    sql = ScanSql(table=TableName("t"), columns=("id",), conditions=(condition,)).render(ANSI)
    assert sorted(r[0] for r in db.execute(sql)) == ids
