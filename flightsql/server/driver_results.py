"""Small results made in the driver, without a Spark task.

A statement that reads no data (``SELECT 1``, ``VALUES ...``, ``SELECT current_date()``)
is answered from the driver.  Spark runs a job even for these when asked for Arrow
(``toArrow()``), and a job needs an executor: right after a host is lost, Spark may
still hand the task to that host's executor and the answer waits for the loss to be
noticed.  Here the rows are made by the driver alone:

* a plan Spark executes as a local table scan (``VALUES``, and whatever the optimizer
  folds into one) is collected without a job;
* a projection of constants over the one-row relation (``SELECT 1, 'x'``; the
  optimizer has folded the expressions into literals) is put over a local relation of
  one row, which the optimizer folds into a local table scan too.  A ``TIMESTAMP``
  constant (``current_timestamp()`` included) is left to a job: its SQL text depends
  on the time zone of the thread that writes it.

The rows become Arrow in this process, in the statement's own Arrow schema.  Where
either step does not apply (an expression that is not constant, a type this module
does not convert), :func:`driver_table` answers None and the caller runs a job.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

_LOCAL_SCANS = ("LocalTableScanExec",)


def driver_table(df: DataFrame, limit: int, schema: pa.Schema) -> pa.Table | None:
    """At most ``limit`` rows of ``df`` as an Arrow table of ``schema``, made without a
    Spark task; None where that is not possible."""
    if not _convertible(schema):
        return None
    constants = _constants(df, schema) if limit > 0 else None
    if constants is not None:
        return constants
    local = df if _scans_locally(df, limit) else _over_local_relation(df)
    if local is None or not _scans_locally(local, limit):
        return None
    rows = local.limit(limit).collect()  # a local table scan: no job
    try:
        columns = [
            pa.array([_value(row[i], field.type) for row in rows], type=field.type)
            for i, field in enumerate(schema)
        ]
    except (pa.ArrowException, TypeError, ValueError) as exc:
        log.debug("driver rows not converted (%s): a job makes them", exc)
        return None
    return pa.Table.from_arrays(columns, schema=schema)


#: literal types whose JVM value py4j hands over as the Python value itself
_PLAIN_LITERALS = {"integer", "long", "short", "byte", "double", "float", "boolean"}


def _constants(df: DataFrame, schema: pa.Schema) -> pa.Table | None:
    """The one row of a projection of plain literals over the one-row relation (``SELECT
    1, 'x', NULL``), read straight from the optimized plan: no DataFrame is planned."""
    projection = _literal_projection(df)
    if projection is None:
        return None
    values: list[Any] = []
    for _, literal in projection:
        value, kind = literal.value(), str(literal.dataType().typeName())
        if value is None:
            values.append(None)
        elif kind in _PLAIN_LITERALS:
            values.append(value)
        elif kind == "string":
            values.append(str(value.toString()))
        else:
            return None  # dates, decimals, binary ...: made by the general path
    if len(values) != len(schema):
        return None
    try:
        columns = [pa.array([v], type=f.type) for v, f in zip(values, schema, strict=True)]
        return pa.Table.from_arrays(columns, schema=schema)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None


def _literal_projection(df: DataFrame) -> list[tuple[Any, Any]] | None:
    """(alias, literal) of each column if ``df``'s optimized plan is a projection of
    literals over the one-row relation (the optimizer folded its expressions), else None."""
    plan = df._jdf.queryExecution().optimizedPlan()
    if plan.getClass().getSimpleName() != "Project" or plan.child().getClass().getSimpleName() != "OneRowRelation":
        return None
    found = []
    expressions = plan.projectList().iterator()
    while expressions.hasNext():
        expression = expressions.next()
        literal = expression.child() if expression.getClass().getSimpleName() == "Alias" else None
        if literal is None or literal.getClass().getSimpleName() != "Literal":
            return None
        found.append((expression, literal))
    return found


def _scans_locally(df: DataFrame, limit: int) -> bool:
    plan = df.limit(limit)._jdf.queryExecution().executedPlan()
    return str(plan.getClass().getSimpleName()) in _LOCAL_SCANS


def _over_local_relation(df: DataFrame) -> DataFrame | None:
    """``df``'s constants over a one-row local relation, if ``df`` is such a projection."""
    projection = _literal_projection(df)
    if projection is None:
        return None
    selected: list[str] = []
    for expression, value in projection:
        if str(value.dataType().typeName()) == "timestamp":
            # its SQL text is written in the time zone of the calling thread's conf, which
            # on a server thread is not the session's: it would not read back the same
            return None
        name = str(expression.name()).replace("`", "``")
        selected.append(f"{value.sql()} AS `{name}`")
    if not selected:
        return None
    # every value is Spark's own SQL literal and every name is quoted
    local = df.sparkSession.sql(f"SELECT {', '.join(selected)} FROM VALUES (0) AS one_row(unused)")  # noqa: S608
    return local if local.schema == df.schema else None


def _convertible(schema: pa.Schema) -> bool:
    """Types whose Python values this module turns into Arrow exactly (nested ones
    holding timestamps are left to a job)."""
    return all(_simple(field.type) for field in schema)


def _simple(data_type: pa.DataType) -> bool:
    if pa.types.is_timestamp(data_type):
        return True
    if pa.types.is_nested(data_type):
        return not any(pa.types.is_timestamp(t) for t in _leaves(data_type))
    return True


def _leaves(data_type: pa.DataType) -> list[pa.DataType]:
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return _leaves(data_type.value_type)
    if pa.types.is_map(data_type):
        return _leaves(data_type.key_type) + _leaves(data_type.item_type)
    if pa.types.is_struct(data_type):
        return [leaf for i in range(data_type.num_fields) for leaf in _leaves(data_type.field(i).type)]
    return [data_type]


def _value(value: Any, data_type: pa.DataType) -> Any:
    # PySpark hands a TIMESTAMP (with the session's zone) as a naive datetime in this
    # process's local time; Arrow reads a naive datetime as UTC: make it aware first
    if (
        isinstance(value, datetime.datetime) and value.tzinfo is None
        and pa.types.is_timestamp(data_type) and data_type.tz is not None
    ):
        return value.astimezone(datetime.timezone.utc)
    if value is not None and pa.types.is_struct(data_type):
        return {data_type.field(i).name: value[i] for i in range(data_type.num_fields)}
    return value
