"""Bulk ingest (adbc_ingest) in every mode."""

from __future__ import annotations

import datetime
import decimal

import adbc_driver_manager
import pyarrow as pa
import pytest

pytestmark = pytest.mark.integration


def _rows(cur, sql: str):  # type: ignore[no-untyped-def]
    cur.execute(sql)
    return cur.fetchall()


def test_create_append_replace_create_append(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS ing_modes")
        assert cur.adbc_ingest("ing_modes", pa.table({"a": [1, 2, 3]}), mode="create") == 3
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.adbc_ingest("ing_modes", pa.table({"a": [9]}), mode="create")
        assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.ALREADY_EXISTS
        assert cur.adbc_ingest("ing_modes", pa.table({"a": [4]}), mode="append") == 1
        assert _rows(cur, "SELECT a FROM ing_modes ORDER BY a") == [(1,), (2,), (3,), (4,)]
        assert cur.adbc_ingest("ing_modes", pa.table({"a": [7, 8]}), mode="replace") == 2
        assert _rows(cur, "SELECT a FROM ing_modes ORDER BY a") == [(7,), (8,)]
        assert cur.adbc_ingest("ing_modes", pa.table({"a": [9]}), mode="create_append") == 1
        assert _rows(cur, "SELECT count(*) FROM ing_modes") == [(3,)]
        cur.execute("DROP TABLE ing_modes")
        assert cur.adbc_ingest("ing_modes", pa.table({"a": [1]}), mode="create_append") == 1
        cur.execute("DROP TABLE ing_modes")


def test_append_to_missing_table_is_not_found(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur, pytest.raises(adbc_driver_manager.Error) as info:
        cur.adbc_ingest("ing_missing_table", pa.table({"a": [1]}), mode="append")
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND


def test_an_upload_without_messages_is_refused_clearly(conn) -> None:  # type: ignore[no-untyped-def]
    empty = pa.table({"a": pa.array([], pa.int64())})  # ADBC sends no message at all for it
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.adbc_ingest("ing_empty", empty, mode="create")
        assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
        assert "DoPut received no messages" in str(info.value)
        # one empty batch carries the schema: the empty table is created
        assert cur.adbc_ingest("ing_empty", pa.RecordBatchReader.from_batches(
            empty.schema, [pa.record_batch([pa.array([], pa.int64())], schema=empty.schema)]), mode="create") == 0
        assert _rows(cur, "SELECT count(*) FROM ing_empty") == [(0,)]
        cur.execute("DROP TABLE ing_empty")


def test_types_survive_ingest(conn) -> None:  # type: ignore[no-untyped-def]
    data = pa.table({
        "i": pa.array([1, None], pa.int32()),
        "l": pa.array([2**40, 5], pa.int64()),
        "d": pa.array([1.5, None], pa.float64()),
        "s": pa.array(["x", None]),
        "b": pa.array([True, False]),
        "day": pa.array([datetime.date(2024, 1, 2), None]),
        "dec": pa.array([decimal.Decimal("1.25"), decimal.Decimal("-3.50")], pa.decimal128(10, 2)),
        "ts": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5), None], pa.timestamp("us", tz="UTC")),
        "bin": pa.array([b"\x00\x01", None], pa.binary()),
        "arr": pa.array([[1, 2], None], pa.list_(pa.int64())),
    })
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS ing_types")
        cur.adbc_ingest("ing_types", data, mode="create")
        cur.execute("SELECT * FROM ing_types ORDER BY l DESC")
        back = cur.fetch_arrow_table()
        cur.execute("DROP TABLE ing_types")
    for name in ("i", "l", "d", "s", "b", "day", "dec", "bin", "arr"):
        assert back.column(name).to_pylist() == data.column(name).to_pylist(), name
    assert back.column("ts").cast(pa.timestamp("us", "UTC")).to_pylist() == data.column("ts").to_pylist()


def test_target_catalog_and_schema(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS ing_db")
        cur.execute("DROP TABLE IF EXISTS ing_db.placed")
        cur.adbc_ingest("placed", pa.table({"a": [1]}), mode="create", catalog_name="spark_catalog", db_schema_name="ing_db")
        assert _rows(cur, "SELECT a FROM spark_catalog.ing_db.placed") == [(1,)]
        cur.execute("DROP TABLE ing_db.placed")


def test_temporary_table(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.adbc_ingest("ing_temp", pa.table({"a": [1, 2]}), mode="replace", temporary=True)
        cur.adbc_ingest("ing_temp", pa.table({"a": [3]}), mode="append", temporary=True)
        assert _rows(cur, "SELECT a FROM ing_temp ORDER BY a") == [(1,), (2,), (3,)]
        tables = _rows(cur, "SHOW TABLES LIKE 'ing_temp'")
        assert tables and tables[0][2] is True  # isTemporary


def test_large_ingest_streams(conn) -> None:  # type: ignore[no-untyped-def]
    def batches():  # ~400k rows in pieces; the server stages them to Parquet as they come
        for start in range(0, 400_000, 50_000):
            yield pa.record_batch({"id": pa.array(range(start, start + 50_000), pa.int64()),
                                   "label": pa.array([f"row {i}" for i in range(start, start + 50_000)])})

    schema = pa.schema([("id", pa.int64()), ("label", pa.string())])
    reader = pa.RecordBatchReader.from_batches(schema, batches())
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS ing_big")
        assert cur.adbc_ingest("ing_big", reader, mode="create") == 400_000
        assert _rows(cur, "SELECT count(*), sum(id) FROM ing_big") == [(400_000, sum(range(400_000)))]
        cur.execute("DROP TABLE ing_big")
