"""SQL statements on Spark: classify, analyse, bind parameters, execute.

A statement is one of three kinds, decided by parsing alone (never by running it,
so preparing ``DROP TABLE`` drops nothing):

* ``QUERY``: a relation (SELECT, WITH, VALUES, TABLE ...); runs as a distributed job.
* ``COMMAND``: a command with output rows (SHOW, DESCRIBE, EXPLAIN, SET); runs in the
  driver when executed, and its (driver-held) output is served.
* ``UPDATE``: DDL and DML with no output rows; executed for an affected-row count.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from flightsql.errors import InvalidArgument

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_WRITE_STATEMENTS = {
    "InsertIntoStatement",
    "DeleteFromTable",
    "UpdateTable",
    "MergeIntoTable",
    "OverwriteByExpression",
    "AppendData",
    "InsertIntoDir",
}
_ORDER_PRESERVING = {"Project", "Filter", "GlobalLimit", "LocalLimit", "SubqueryAlias", "Offset"}


class StatementKind(enum.Enum):
    QUERY = "query"
    COMMAND = "command"
    UPDATE = "update"


@dataclass(frozen=True)
class Statement:
    sql: str
    kind: StatementKind
    parameter_count: int

    @property
    def is_update(self) -> bool:
        return self.kind is StatementKind.UPDATE


@dataclass(frozen=True)
class StatementLimits:
    """The largest statement a node lets Spark parse: its length in characters, and how
    deep its brackets nest.  Spark's parser recurses per level (50,000 nested parentheses
    cost minutes of CPU and the driver's heap): a statement past either limit is refused
    before it reaches Spark."""

    max_length: int = 1 << 20
    max_depth: int = 256

    def check(self) -> None:
        if self.max_length < 1 or self.max_depth < 1:
            raise ValueError("max-statement-length and max-statement-depth must be >= 1")


def classify(spark: SparkSession, sql: str, limits: StatementLimits = StatementLimits()) -> Statement:
    """Parse ``sql`` (ParseException -> INVALID_ARGUMENT) and say what kind it is."""
    if not sql or not sql.strip():
        raise InvalidArgument("empty SQL statement")
    if len(sql) > limits.max_length:
        raise InvalidArgument(f"the statement has {len(sql):,} characters; this server takes at most "
                              f"{limits.max_length:,} (--max-statement-length)")
    markers, depth = scan(sql)
    if depth > limits.max_depth:
        raise InvalidArgument(f"the statement nests brackets {depth:,} deep; this server takes at most "
                              f"{limits.max_depth} levels (--max-statement-depth)")
    jvm: Any = spark._jvm
    plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(sql)
    command_class = jvm.java.lang.Class.forName("org.apache.spark.sql.catalyst.plans.logical.Command")
    name = plan.getClass().getSimpleName()
    if command_class.isInstance(plan):
        kind = StatementKind.UPDATE if plan.output().isEmpty() else StatementKind.COMMAND
    elif name in _WRITE_STATEMENTS:
        kind = StatementKind.UPDATE
    else:
        kind = StatementKind.QUERY
    return Statement(sql, kind, markers)


def count_parameter_markers(sql: str) -> int:
    """Count ``?`` markers outside string literals, quoted identifiers and comments."""
    return scan(sql)[0]


def scan(sql: str) -> tuple[int, int]:
    """One lexical walk: the ``?`` markers, and the deepest nesting of ``(`` and ``[``,
    outside string literals, quoted identifiers and comments."""
    count = depth = deepest = 0
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i += 1
            while i < n and sql[i] != ch:
                i += 2 if sql[i] == "\\" and ch != "`" else 1
        elif sql.startswith("--", i):
            while i < n and sql[i] != "\n":
                i += 1
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2  # Spark's bracketed comments nest
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            continue
        elif ch == "?":
            count += 1
        elif ch in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]":
            depth -= 1
        i += 1
    return count, deepest


def dataframe(spark: SparkSession, statement: Statement, parameters: Sequence[Any] | None) -> DataFrame:
    """``spark.sql`` with positional parameters bound (analysis happens here)."""
    if statement.parameter_count:
        values = list(parameters) if parameters is not None else [None] * statement.parameter_count
        if len(values) != statement.parameter_count:
            raise InvalidArgument(
                f"statement has {statement.parameter_count} parameter markers, "
                f"{len(values)} values were bound"
            )
        return spark.sql(statement.sql, args=values)
    if parameters:
        raise InvalidArgument(f"statement has no parameter markers, {len(parameters)} values were bound")
    return spark.sql(statement.sql)


def is_ordered(df: DataFrame) -> bool:
    """Whether the result has a defined order (a global sort at the top of the plan)."""
    plan = df._jdf.queryExecution().optimizedPlan()
    while True:
        name = plan.getClass().getSimpleName()
        if name == "Sort":
            return bool(getattr(plan, "global")())  # `global` is a Python keyword
        if name not in _ORDER_PRESERVING or plan.children().isEmpty():
            return False
        plan = plan.children().head()


#: leaves that hold their rows in the plan itself (no data source is read)
_LITERAL_LEAVES = {"OneRowRelation", "LocalRelation"}


def reads_no_data(df: DataFrame) -> bool:
    """Whether every leaf of the optimized plan is literal rows (SELECT 1, VALUES ...)."""
    leaves = df._jdf.queryExecution().optimizedPlan().collectLeaves()
    iterator = leaves.iterator()
    while iterator.hasNext():
        if iterator.next().getClass().getSimpleName() not in _LITERAL_LEAVES:
            return False
    return True


def affected_rows(df: DataFrame) -> int:
    """Rows written by an executed statement: Spark's count where its plan keeps one, else 0.

    Never -1 ("unknown", which Flight SQL allows): the Flight SQL JDBC driver takes -1 for
    "this statement has a result" and runs the statement again as a query, so a DDL
    statement would fail on its second run and an uncounted write would be written twice.
    JDBC itself asks for 0 from statements that return nothing."""
    try:
        plan = df._jdf.queryExecution().executedPlan()
        if plan.getClass().getSimpleName() == "CommandResultExec":
            plan = plan.commandPhysicalPlan()
        metrics = plan.metrics()
        if metrics.contains("numOutputRows"):
            return max(int(metrics.apply("numOutputRows").value()), 0)
    except Exception:  # noqa: BLE001 - a plan without metrics counts no rows
        return 0
    return 0


_PARAMETER_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(), "byte": pa.int8(), "short": pa.int16(), "integer": pa.int32(), "long": pa.int64(),
    "float": pa.float32(), "double": pa.float64(), "string": pa.utf8(), "binary": pa.binary(),
    "date": pa.date32(),
    # milliseconds: the JDBC driver binds a java.sql.Timestamp as its epoch milliseconds, whatever the unit
    "timestamp": pa.timestamp("ms", tz="UTC"), "timestamp_ntz": pa.timestamp("ms"),
}


def _parameter_type(spark_type: str | None) -> pa.DataType:
    if spark_type is None:
        return pa.utf8()  # no context implies a type: a string, as Spark types an untyped literal
    if spark_type in _PARAMETER_TYPES:
        return _PARAMETER_TYPES[spark_type]
    if spark_type.startswith("decimal("):
        precision, scale = (int(part) for part in spark_type[len("decimal("):-1].split(","))
        return pa.decimal128(precision, scale)
    return pa.utf8()


def parameter_schema(types: Sequence[str | None]) -> pa.Schema:
    """The parameter schema a prepared statement announces: each marker typed as its
    context implies (see :func:`flightsql.security.plan.parameter_types`), else a string.

    Clients that type their values themselves (ADBC) may bind any type: the values are
    converted as Spark converts literals.  The JDBC driver binds each value into the
    announced type, so the announcement must be what the statement needs."""
    return pa.schema([pa.field(f"parameter_{i + 1}", _parameter_type(t)) for i, t in enumerate(types)])


def parameter_rows(batches: Sequence[pa.RecordBatch]) -> list[list[Any]]:
    """Bound parameter rows as Python values, one list per row."""
    rows: list[list[Any]] = []
    for batch in batches:
        columns = [column.to_pylist() for column in batch.columns]
        if not columns:
            rows.extend([] for _ in range(batch.num_rows))
            continue
        rows.extend(list(values) for values in zip(*columns, strict=True))
    return rows
