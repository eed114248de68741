"""The SQL the data source sends: table reads, chosen columns and pushed filters.

A filter is pushed only when its SQL means exactly what Spark's filter means on any
server, whatever its dialect; anything else stays in Spark (which then evaluates it on
the rows read), so results never change.  What is pushed:

- comparisons (``=``, ``<``, ``<=``, ``>``, ``>=``), null-safe equality, ``IN``,
  ``IS [NOT] NULL``, ``NOT``, and prefix/suffix/substring matches (as ``LIKE`` with an
  explicit ``ESCAPE`` character), on top-level columns of the result;
- literals: booleans, integers, finite floats and decimals, dates, and strings that hold
  neither a quote nor a backslash (the only strings every dialect reads the same way).

Timestamps are not pushed: a timestamp literal is read in the server's session time
zone, which need not be Spark's.
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datasource.options import TableName

SCAN_ALIAS = "flightsql_scan"
LIKE_ESCAPE = "!"
_CLOSING = {'"': '"', "`": "`", "[": "]"}


@dataclass(frozen=True)
class Dialect:
    """How the server quotes identifiers (its SQL_IDENTIFIER_QUOTE_CHAR)."""

    identifier_quote: str = '"'

    def quote(self, name: str) -> str:
        opening = self.identifier_quote
        closing = _CLOSING.get(opening, opening)
        return opening + name.replace(closing, closing * 2) + closing

    def table(self, name: TableName) -> str:
        return ".".join(self.quote(part) for part in name.parts)


def literal(value: Any) -> str | None:
    """``value`` as a SQL literal every dialect reads the same way, or None."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, datetime.datetime):
        return None  # time zone dependent (and a subclass of date)
    if isinstance(value, datetime.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return f"'{value}'" if "'" not in value and "\\" not in value else None
    return None


def _like_pattern(value: object, before: str, after: str) -> str | None:
    if not isinstance(value, str):
        return None
    escaped = "".join(LIKE_ESCAPE + c if c in ("%", "_", LIKE_ESCAPE) else c for c in value)
    text = literal(before + escaped + after)
    return None if text is None else f"{text} ESCAPE '{LIKE_ESCAPE}'"


class FilterTranslator:
    """Turns ``pyspark.sql.datasource`` filters into SQL conditions on the scanned columns."""

    def __init__(self, dialect: Dialect, columns: Sequence[str]) -> None:
        self.dialect = dialect
        self.columns = frozenset(columns)

    def translate(self, spark_filter: Any) -> str | None:
        """The condition, or None when it cannot be expressed exactly."""
        from pyspark.sql import datasource as ds

        if isinstance(spark_filter, ds.Not):
            inner = self.translate(spark_filter.child)
            return None if inner is None else f"NOT ({inner})"
        column = self._column(getattr(spark_filter, "attribute", None))
        if column is None:
            return None
        if isinstance(spark_filter, ds.IsNull):
            return f"{column} IS NULL"
        if isinstance(spark_filter, ds.IsNotNull):
            return f"{column} IS NOT NULL"
        value = spark_filter.value
        if isinstance(spark_filter, ds.EqualNullSafe):
            if value is None:
                return f"{column} IS NULL"
            text = literal(value)
            # never null: true exactly when the column holds the (non-null) value
            return None if text is None else f"({column} IS NOT NULL AND {column} = {text})"
        if isinstance(spark_filter, ds.In):
            texts = [literal(v) for v in value]
            if not texts or any(t is None for t in texts):
                return None
            return f"{column} IN ({', '.join(t for t in texts if t is not None)})"
        if isinstance(spark_filter, (ds.StringStartsWith, ds.StringEndsWith, ds.StringContains)):
            before = "%" if isinstance(spark_filter, (ds.StringEndsWith, ds.StringContains)) else ""
            after = "%" if isinstance(spark_filter, (ds.StringStartsWith, ds.StringContains)) else ""
            pattern = _like_pattern(value, before, after)
            return None if pattern is None else f"{column} LIKE {pattern}"
        operator = _OPERATORS.get(type(spark_filter).__name__)
        text = literal(value)
        if operator is None or text is None:
            return None
        return f"{column} {operator} {text}"

    def _column(self, attribute: Any) -> str | None:
        if not isinstance(attribute, tuple) or len(attribute) != 1 or attribute[0] not in self.columns:
            return None  # nested fields and unknown names stay in Spark
        return self.dialect.quote(attribute[0])


_OPERATORS = {
    "EqualTo": "=",
    "GreaterThan": ">",
    "GreaterThanOrEqual": ">=",
    "LessThan": "<",
    "LessThanOrEqual": "<=",
}


@dataclass(frozen=True)
class ScanSql:
    """What to read: the user's query or a table, which columns, and which conditions."""

    query: str | None = None
    table: TableName | None = None
    columns: tuple[str, ...] | None = None  # None: every column
    conditions: tuple[str, ...] = ()

    def needs_dialect(self) -> bool:
        return self.table is not None or self.columns is not None or bool(self.conditions)

    def render(self, dialect: Dialect | None) -> str:
        if self.query is not None and self.columns is None and not self.conditions:
            return self.query  # nothing to add: the server sees the user's own SQL
        if dialect is None:
            raise ValueError("a dialect is needed to render this scan")
        select = "*" if self.columns is None else ", ".join(dialect.quote(c) for c in self.columns)
        # newlines keep a trailing "-- comment" in the query from hiding the parenthesis
        source = dialect.table(self.table) if self.table is not None else f"(\n{self.query}\n) AS {SCAN_ALIAS}"
        sql = f"SELECT {select} FROM {source}"  # noqa: S608 - quoted names; the query is the user's own
        if self.conditions:
            sql += " WHERE " + " AND ".join(f"({c})" for c in self.conditions)
        return sql
