"""The ``CommandGetXdbcTypeInfo`` result: one row per Spark SQL data type.

Type codes are the ``XdbcDataType`` values of ``FlightSql.proto`` (the
``java.sql.Types`` / ODBC numbers).  Spark types the enum has no code for use
the ``java.sql.Types`` code a JDBC client expects: ``ARRAY`` (2003), ``STRUCT``
(2002) and ``JAVA_OBJECT`` (2000) for ``MAP``.  ``BOOLEAN`` is ``BIT`` (-7), the
only boolean code the enum has, and Spark's 4-byte ``FLOAT`` is ``REAL`` (7).

Dates and timestamps carry the generic ``XDBC_DATETIME`` (9) in
``sql_data_type`` and their kind in ``datetime_subcode``; the two interval
families carry ``XDBC_INTERVAL`` (10) in both type columns and their kind in
``datetime_subcode``.  Rows are ordered by ``data_type`` then ``type_name``.
"""

from __future__ import annotations

import enum
import functools
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from flightsql.catalog.schemas import XDBC_TYPE_INFO

__all__ = ["Nullable", "Searchable", "XdbcType", "xdbc_type_info"]

#: Largest Spark string or binary value, and the size reported for them.
_MAX_LENGTH = 2**31 - 1
#: Digits of Spark's microsecond fraction.
_MICROS_DIGITS = 6


class XdbcType(enum.IntEnum):
    """Type codes used here: ``XdbcDataType`` plus three ``java.sql.Types`` codes."""

    BIT = -7
    TINYINT = -6
    BIGINT = -5
    VARBINARY = -3
    CHAR = 1
    DECIMAL = 3
    INTEGER = 4
    SMALLINT = 5
    REAL = 7
    DOUBLE = 8
    DATETIME = 9
    INTERVAL = 10
    VARCHAR = 12
    DATE = 91
    TIMESTAMP = 93
    JAVA_OBJECT = 2000
    STRUCT = 2002
    ARRAY = 2003


class _Subcode(enum.IntEnum):
    """``XdbcDatetimeSubcode`` values used here."""

    DATE = 1
    TIMESTAMP = 3
    YEAR_TO_MONTH = 7
    DAY_TO_SECOND = 10


class Nullable(enum.IntEnum):
    """The ``Nullable`` enum of ``FlightSql.proto``."""

    NO_NULLS = 0
    NULLABLE = 1
    UNKNOWN = 2


class Searchable(enum.IntEnum):
    """The ``Searchable`` enum of ``FlightSql.proto``."""

    NONE = 0
    CHAR = 1
    BASIC = 2
    FULL = 3


def _row(
    type_name: str,
    data_type: XdbcType,
    *,
    column_size: int | None = None,
    prefix: str | None = None,
    suffix: str | None = None,
    create_params: list[str] | None = None,
    case_sensitive: bool = False,
    searchable: Searchable = Searchable.BASIC,
    numeric: bool = False,
    scale: tuple[int, int] | None = None,
    sql_data_type: XdbcType | None = None,
    subcode: _Subcode | None = None,
    radix: int | None = None,
    interval_precision: int | None = None,
) -> dict[str, Any]:
    """One result row; ``numeric`` sets the attributes only numbers have."""
    return {
        "type_name": type_name,
        "data_type": int(data_type),
        "column_size": column_size,
        "literal_prefix": prefix,
        "literal_suffix": suffix,
        "create_params": create_params,
        "nullable": int(Nullable.NULLABLE),
        "case_sensitive": case_sensitive,
        "searchable": int(searchable),
        "unsigned_attribute": False if numeric else None,
        "fixed_prec_scale": False,
        "auto_increment": False if numeric else None,
        "local_type_name": None,
        "minimum_scale": None if scale is None else scale[0],
        "maximum_scale": None if scale is None else scale[1],
        "sql_data_type": int(sql_data_type if sql_data_type is not None else data_type),
        "datetime_subcode": None if subcode is None else int(subcode),
        "num_prec_radix": radix,
        "interval_precision": interval_precision,
    }


def _text(type_name: str, data_type: XdbcType, params: list[str] | None) -> dict[str, Any]:
    return _row(
        type_name,
        data_type,
        column_size=_MAX_LENGTH,
        prefix="'",
        suffix="'",
        create_params=params,
        case_sensitive=True,
        searchable=Searchable.FULL,
    )


def _integral(type_name: str, data_type: XdbcType, digits: int) -> dict[str, Any]:
    return _row(type_name, data_type, column_size=digits, numeric=True, scale=(0, 0), radix=10)


def _rows() -> list[dict[str, Any]]:
    """Every Spark SQL type this server describes, unordered."""
    datetime = XdbcType.DATETIME
    return [
        _row("BOOLEAN", XdbcType.BIT, column_size=1),
        _integral("TINYINT", XdbcType.TINYINT, 3),
        _integral("SMALLINT", XdbcType.SMALLINT, 5),
        _integral("INT", XdbcType.INTEGER, 10),
        _integral("BIGINT", XdbcType.BIGINT, 19),
        _row("FLOAT", XdbcType.REAL, column_size=24, numeric=True, radix=2),
        _row("DOUBLE", XdbcType.DOUBLE, column_size=53, numeric=True, radix=2),
        _row(
            "DECIMAL",
            XdbcType.DECIMAL,
            column_size=38,
            create_params=["precision", "scale"],
            numeric=True,
            scale=(0, 38),
            radix=10,
        ),
        _text("STRING", XdbcType.VARCHAR, None),
        _text("VARCHAR", XdbcType.VARCHAR, ["length"]),
        _text("CHAR", XdbcType.CHAR, ["length"]),
        _row("BINARY", XdbcType.VARBINARY, column_size=_MAX_LENGTH, prefix="X'", suffix="'"),
        _row(
            "DATE",
            XdbcType.DATE,
            column_size=len("YYYY-MM-DD"),
            prefix="DATE '",
            suffix="'",
            sql_data_type=datetime,
            subcode=_Subcode.DATE,
        ),
        _row(
            "TIMESTAMP",
            XdbcType.TIMESTAMP,
            column_size=len("YYYY-MM-DD HH:MM:SS.ffffff"),
            prefix="TIMESTAMP '",
            suffix="'",
            scale=(_MICROS_DIGITS, _MICROS_DIGITS),
            sql_data_type=datetime,
            subcode=_Subcode.TIMESTAMP,
        ),
        _row(
            "TIMESTAMP_NTZ",
            XdbcType.TIMESTAMP,
            column_size=len("YYYY-MM-DD HH:MM:SS.ffffff"),
            prefix="TIMESTAMP_NTZ '",
            suffix="'",
            scale=(_MICROS_DIGITS, _MICROS_DIGITS),
            sql_data_type=datetime,
            subcode=_Subcode.TIMESTAMP,
        ),
        # Spark's year-month intervals reach 178956970 years and its day-time
        # intervals 106751991 days: nine leading digits either way.
        _row(
            "INTERVAL YEAR TO MONTH",
            XdbcType.INTERVAL,
            prefix="INTERVAL '",
            suffix="' YEAR TO MONTH",
            subcode=_Subcode.YEAR_TO_MONTH,
            interval_precision=9,
        ),
        _row(
            "INTERVAL DAY TO SECOND",
            XdbcType.INTERVAL,
            prefix="INTERVAL '",
            suffix="' DAY TO SECOND",
            scale=(_MICROS_DIGITS, _MICROS_DIGITS),
            subcode=_Subcode.DAY_TO_SECOND,
            interval_precision=9,
        ),
        _row("ARRAY", XdbcType.ARRAY),
        # Spark cannot compare maps, so they cannot appear in a WHERE predicate.
        _row("MAP", XdbcType.JAVA_OBJECT, searchable=Searchable.NONE),
        _row("STRUCT", XdbcType.STRUCT),
    ]


@functools.cache
def _all_types() -> pa.Table:
    rows = sorted(_rows(), key=lambda row: (row["data_type"], row["type_name"]))
    return pa.Table.from_pylist(rows, schema=XDBC_TYPE_INFO)


def xdbc_type_info(data_type: int | None = None) -> pa.Table:
    """The type-info rows, all of them or only those of ``data_type``."""
    table = _all_types()
    if data_type is None:
        return table
    return table.filter(pc.equal(table["data_type"], pa.scalar(data_type, pa.int32())))
