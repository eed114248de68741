"""Livy's output shapes: values as JSON, and the result schema as Spark's StructType JSON."""

from __future__ import annotations

import datetime
import decimal

import pyarrow as pa

from flightsql.rest.livy import StatementState, error_output, json_value, ok_output, spark_schema


def test_values_become_json_as_livy_s_sql_interpreter_writes_them() -> None:
    assert json_value(None) is None and json_value(3) == 3 and json_value(2.5) == 2.5 and json_value(True) is True
    assert json_value(decimal.Decimal("12.340")) == "12.340"
    assert json_value(datetime.date(2026, 1, 2)) == "2026-01-02"
    assert json_value(datetime.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05"
    assert json_value(b"\x00\x01") == "AAE="
    assert json_value([1, None, 3]) == [1, None, 3]
    assert json_value({"a": decimal.Decimal("1.5")}) == {"a": "1.5"}
    assert json_value([("k", 1), ("j", 2)]) == {"k": 1, "j": 2}  # a map's pairs


def test_the_schema_is_spark_s_struct_json() -> None:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string()),
                        ("price", pa.decimal128(10, 2)), ("tags", pa.list_(pa.string()))])
    doc = spark_schema(schema)
    assert doc["type"] == "struct"
    assert [(f["name"], f["type"], f["nullable"]) for f in doc["fields"][:3]] == [
        ("id", "long", False), ("name", "string", True), ("price", "decimal(10,2)", True)]
    assert doc["fields"][3]["type"] == {"type": "array", "elementType": "string", "containsNull": True}


def test_outputs_say_whether_rows_were_left_out() -> None:
    schema = pa.schema([("n", pa.int64())])
    whole = ok_output(0, schema, [[1], [2]], 2, {"endpoints": []})
    assert whole["status"] == "ok" and whole["truncated"] is False
    assert whole["data"]["application/json"]["data"] == [[1], [2]]
    assert ok_output(1, schema, [[1]], 5, {})["truncated"] is True
    assert ok_output(1, schema, [[1]], None, {})["truncated"] is True  # the total is unknown
    failed = error_output(2, "SparkError", "boom")
    assert failed == {"status": "error", "execution_count": 2, "ename": "SparkError", "evalue": "boom", "traceback": []}


def test_finished_states() -> None:
    assert {s for s in StatementState if s.finished} == {
        StatementState.AVAILABLE, StatementState.ERROR, StatementState.CANCELLED}
