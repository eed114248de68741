"""The CommandGetXdbcTypeInfo rows describing Spark SQL types."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flightsql.catalog.schemas import XDBC_TYPE_INFO
from flightsql.catalog.xdbc_types import xdbc_type_info

# type name -> (data_type, sql_data_type, datetime_subcode), from the XdbcDataType
# and XdbcDatetimeSubcode enums of FlightSql.proto, and java.sql.Types for the
# three types the enum lacks (ARRAY 2003, STRUCT 2002, JAVA_OBJECT 2000).
EXPECTED = {
    "BOOLEAN": (-7, -7, None),  # XDBC_BIT
    "TINYINT": (-6, -6, None),
    "SMALLINT": (5, 5, None),
    "INT": (4, 4, None),
    "BIGINT": (-5, -5, None),
    "FLOAT": (7, 7, None),  # XDBC_REAL: single precision
    "DOUBLE": (8, 8, None),
    "DECIMAL": (3, 3, None),
    "STRING": (12, 12, None),
    "VARCHAR": (12, 12, None),
    "CHAR": (1, 1, None),
    "BINARY": (-3, -3, None),  # XDBC_VARBINARY
    "DATE": (91, 9, 1),  # XDBC_DATETIME, XDBC_SUBCODE_DATE
    "TIMESTAMP": (93, 9, 3),  # XDBC_DATETIME, XDBC_SUBCODE_TIMESTAMP
    "TIMESTAMP_NTZ": (93, 9, 3),
    "INTERVAL YEAR TO MONTH": (10, 10, 7),  # XDBC_INTERVAL, XDBC_SUBCODE_YEAR_TO_MONTH
    "INTERVAL DAY TO SECOND": (10, 10, 10),  # XDBC_INTERVAL, XDBC_SUBCODE_DAY_TO_SECOND
    "ARRAY": (2003, 2003, None),
    "MAP": (2000, 2000, None),
    "STRUCT": (2002, 2002, None),
}


def _by_name(table: pa.Table) -> dict[str, dict[str, object]]:
    return {row["type_name"]: row for row in table.to_pylist()}


def test_schema_is_the_spec_schema() -> None:
    assert xdbc_type_info().schema.equals(XDBC_TYPE_INFO)


def test_one_row_per_spark_type_with_its_codes() -> None:
    rows = _by_name(xdbc_type_info())
    assert set(rows) == set(EXPECTED)
    for name, (data_type, sql_data_type, subcode) in EXPECTED.items():
        row = rows[name]
        assert (row["data_type"], row["sql_data_type"], row["datetime_subcode"]) == (
            data_type,
            sql_data_type,
            subcode,
        ), name


def test_ordered_by_data_type_then_type_name() -> None:
    rows = xdbc_type_info().to_pylist()
    keys = [(row["data_type"], row["type_name"]) for row in rows]
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys))


def test_not_null_columns_hold_no_nulls() -> None:
    table = xdbc_type_info()
    for field in XDBC_TYPE_INFO:
        if not field.nullable:
            assert table[field.name].null_count == 0, field.name
    table.validate(full=True)


def test_filter_by_data_type() -> None:
    timestamps = xdbc_type_info(93)
    assert timestamps.schema.equals(XDBC_TYPE_INFO)
    assert timestamps["type_name"].to_pylist() == ["TIMESTAMP", "TIMESTAMP_NTZ"]
    assert xdbc_type_info(4)["type_name"].to_pylist() == ["INT"]
    assert xdbc_type_info(12)["type_name"].to_pylist() == ["STRING", "VARCHAR"]


def test_unknown_data_type_gives_no_rows() -> None:
    empty = xdbc_type_info(-12345)
    assert empty.num_rows == 0
    assert empty.schema.equals(XDBC_TYPE_INFO)


@pytest.mark.parametrize(
    ("name", "radix", "column_size"),
    [
        ("TINYINT", 10, 3),
        ("SMALLINT", 10, 5),
        ("INT", 10, 10),
        ("BIGINT", 10, 19),
        ("DECIMAL", 10, 38),
        ("FLOAT", 2, 24),
        ("DOUBLE", 2, 53),
    ],
)
def test_numeric_precision(name: str, radix: int, column_size: int) -> None:
    row = _by_name(xdbc_type_info())[name]
    assert (row["num_prec_radix"], row["column_size"]) == (radix, column_size)
    assert row["unsigned_attribute"] is False
    assert row["auto_increment"] is False


def test_parameters_and_literals() -> None:
    rows = _by_name(xdbc_type_info())
    assert rows["DECIMAL"]["create_params"] == ["precision", "scale"]
    assert (rows["DECIMAL"]["minimum_scale"], rows["DECIMAL"]["maximum_scale"]) == (0, 38)
    assert rows["VARCHAR"]["create_params"] == ["length"]
    assert rows["CHAR"]["create_params"] == ["length"]
    assert rows["STRING"]["create_params"] is None
    assert (rows["STRING"]["literal_prefix"], rows["STRING"]["literal_suffix"]) == ("'", "'")
    assert rows["BINARY"]["literal_prefix"] == "X'"
    assert rows["DATE"]["literal_prefix"] == "DATE '"
    assert rows["INT"]["literal_prefix"] is None


def test_attributes_of_text_and_other_types() -> None:
    rows = _by_name(xdbc_type_info())
    for name in ("STRING", "VARCHAR", "CHAR"):
        assert rows[name]["case_sensitive"] is True
        assert rows[name]["searchable"] == 3  # SEARCHABLE_FULL: LIKE and comparisons
    assert rows["INT"]["case_sensitive"] is False
    assert rows["INT"]["searchable"] == 2  # SEARCHABLE_BASIC
    assert rows["MAP"]["searchable"] == 0  # maps are not comparable
    assert rows["STRING"]["unsigned_attribute"] is None
    assert all(row["nullable"] == 1 for row in rows.values())  # NULLABILITY_NULLABLE
    assert all(row["fixed_prec_scale"] is False for row in rows.values())
