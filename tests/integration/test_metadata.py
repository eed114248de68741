"""Catalog metadata through ADBC (get_objects, get_info, table schema) and raw commands."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flightsql.protocol import codec

from flightsql.protocol import commands as cmd
from tests.integration.conftest import flight_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def tables(node):  # type: ignore[no-untyped-def]
    from tests.integration.conftest import connect

    with connect(node) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS meta_db")
        cur.execute("CREATE TABLE IF NOT EXISTS meta_db.under_score (a INT, b STRING) USING parquet")
        cur.execute("CREATE TABLE IF NOT EXISTS meta_db.under1score (a INT) USING parquet")
        cur.execute("CREATE OR REPLACE VIEW meta_db.a_view AS SELECT 1 AS one")
    yield


def _objects(conn, **kwargs):  # type: ignore[no-untyped-def]
    return conn.adbc_get_objects(**kwargs).read_all().to_pylist()


def test_get_objects_catalogs(conn) -> None:  # type: ignore[no-untyped-def]
    rows = _objects(conn, depth="catalogs")
    assert [r["catalog_name"] for r in rows] == ["spark_catalog"]


def test_get_objects_db_schemas(conn) -> None:  # type: ignore[no-untyped-def]
    rows = _objects(conn, depth="db_schemas")
    schemas = {s["db_schema_name"] for r in rows for s in r["catalog_db_schemas"]}
    assert {"default", "demo", "meta_db"} <= schemas


def test_get_objects_tables_with_types_and_patterns(conn) -> None:  # type: ignore[no-untyped-def]
    rows = _objects(conn, depth="tables", db_schema_filter="meta_db")
    tables = {t["table_name"]: t["table_type"] for r in rows for s in r["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert tables == {"under_score": "TABLE", "under1score": "TABLE", "a_view": "VIEW"}
    # `_` matches any one character; an escaped `\\_` only a literal underscore
    rows = _objects(conn, depth="tables", db_schema_filter="meta_db", table_name_filter="under_score")
    names = {t["table_name"] for r in rows for s in r["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert names == {"under_score", "under1score"}
    rows = _objects(conn, depth="tables", db_schema_filter="meta_db", table_name_filter="under\\_score")
    names = {t["table_name"] for r in rows for s in r["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert names == {"under_score"}
    rows = _objects(conn, depth="tables", db_schema_filter="meta%", table_types_filter=["VIEW"])
    names = {t["table_name"] for r in rows for s in r["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert names == {"a_view"}


def test_get_objects_columns(conn) -> None:  # type: ignore[no-untyped-def]
    rows = _objects(conn, depth="all", db_schema_filter="meta_db", table_name_filter="under\\_score")
    (table,) = [t for r in rows for s in r["catalog_db_schemas"] for t in s["db_schema_tables"]]
    assert [c["column_name"] for c in table["table_columns"]] == ["a", "b"]
    assert [c["ordinal_position"] for c in table["table_columns"]] == [1, 2]


def test_table_schema(conn) -> None:  # type: ignore[no-untyped-def]
    schema = conn.adbc_get_table_schema("trips", db_schema_filter="demo")
    assert schema.names == ["trip_id", "trip_date", "city", "fare", "minutes"]
    assert schema.field("fare").type == pa.decimal128(8, 2)


def test_table_types(conn) -> None:  # type: ignore[no-untyped-def]
    types = conn.adbc_get_table_types()
    assert {"TABLE", "VIEW"} <= set(types)


def test_get_info(conn) -> None:  # type: ignore[no-untyped-def]
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "Spark Flight SQL"
    assert info["vendor_version"]
    assert info["vendor_arrow_version"] == pa.__version__


def _read(node, command) -> pa.Table:  # type: ignore[no-untyped-def]
    client, options = flight_client(node)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(codec.encode_command(command)), options)
    tables = [client.do_get(e.ticket, options).read_all() for e in info.endpoints]
    return pa.concat_tables(tables) if tables else info.schema.empty_table()


def test_sql_info_every_requested_id(node) -> None:  # type: ignore[no-untyped-def]
    ids = tuple(range(0, 12)) + (100, 101) + tuple(range(500, 577))
    table = _read(node, cmd.CommandGetSqlInfo(info=ids))
    assert sorted(table.column("info_name").to_pylist()) == sorted(ids)


def test_xdbc_type_info(node) -> None:  # type: ignore[no-untyped-def]
    table = _read(node, cmd.CommandGetXdbcTypeInfo())
    assert {"BIGINT", "STRING", "DECIMAL", "TIMESTAMP"} <= set(table.column("type_name").to_pylist())
    only_bigint = _read(node, cmd.CommandGetXdbcTypeInfo(data_type=-5))
    assert set(only_bigint.column("type_name").to_pylist()) == {"BIGINT"}


def test_keys_have_right_schemas_and_no_rows(node) -> None:  # type: ignore[no-untyped-def]
    from flightsql.catalog import schemas

    pk = _read(node, cmd.CommandGetPrimaryKeys(catalog=None, db_schema="demo", table="trips"))
    assert pk.schema.equals(schemas.PRIMARY_KEYS) and pk.num_rows == 0
    for command in (
        cmd.CommandGetExportedKeys(catalog=None, db_schema="demo", table="trips"),
        cmd.CommandGetImportedKeys(catalog=None, db_schema="demo", table="trips"),
        cmd.CommandGetCrossReference(None, "demo", "trips", None, "meta_db", "under_score"),
    ):
        keys = _read(node, command)
        assert keys.schema.equals(schemas.FOREIGN_KEYS) and keys.num_rows == 0


def test_keys_of_missing_table_are_not_found(node) -> None:  # type: ignore[no-untyped-def]
    # pyarrow reports gRPC NOT_FOUND as ArrowKeyError
    with pytest.raises(pa.ArrowKeyError) as info:
        _read(node, cmd.CommandGetPrimaryKeys(catalog=None, db_schema="demo", table="nope"))
    assert "demo.nope not found" in str(info.value)


def test_get_tables_include_schema_raw(node) -> None:  # type: ignore[no-untyped-def]
    table = _read(node, cmd.CommandGetTables(db_schema_filter_pattern="demo", include_schema=True))
    (raw,) = table.column("table_schema").to_pylist()
    schema = pa.ipc.read_schema(pa.py_buffer(raw))
    assert schema.names[0] == "trip_id"
