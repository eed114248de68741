"""The metadata result schemas, field by field, against FlightSql.proto."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flightsql.catalog import schemas

UTF8, NULLABLE, NOT_NULL = pa.utf8(), True, False


def _fields(schema: pa.Schema) -> list[tuple[str, pa.DataType, bool]]:
    return [(field.name, field.type, field.nullable) for field in schema]


def test_catalogs() -> None:
    assert _fields(schemas.CATALOGS) == [("catalog_name", UTF8, NOT_NULL)]


def test_db_schemas() -> None:
    assert _fields(schemas.DB_SCHEMAS) == [
        ("catalog_name", UTF8, NULLABLE),
        ("db_schema_name", UTF8, NOT_NULL),
    ]


def test_tables_and_tables_with_schema() -> None:
    base = [
        ("catalog_name", UTF8, NULLABLE),
        ("db_schema_name", UTF8, NULLABLE),
        ("table_name", UTF8, NOT_NULL),
        ("table_type", UTF8, NOT_NULL),
    ]
    assert _fields(schemas.TABLES) == base
    assert _fields(schemas.TABLES_WITH_SCHEMA) == [*base, ("table_schema", pa.binary(), NOT_NULL)]


def test_table_types() -> None:
    assert _fields(schemas.TABLE_TYPES) == [("table_type", UTF8, NOT_NULL)]


def test_primary_keys() -> None:
    # key_sequence precedes key_name, as in the C++, Java and Go reference schemas.
    assert _fields(schemas.PRIMARY_KEYS) == [
        ("catalog_name", UTF8, NULLABLE),
        ("db_schema_name", UTF8, NULLABLE),
        ("table_name", UTF8, NOT_NULL),
        ("column_name", UTF8, NOT_NULL),
        ("key_sequence", pa.int32(), NOT_NULL),
        ("key_name", UTF8, NULLABLE),
    ]


def test_foreign_keys() -> None:
    assert _fields(schemas.FOREIGN_KEYS) == [
        ("pk_catalog_name", UTF8, NULLABLE),
        ("pk_db_schema_name", UTF8, NULLABLE),
        ("pk_table_name", UTF8, NOT_NULL),
        ("pk_column_name", UTF8, NOT_NULL),
        ("fk_catalog_name", UTF8, NULLABLE),
        ("fk_db_schema_name", UTF8, NULLABLE),
        ("fk_table_name", UTF8, NOT_NULL),
        ("fk_column_name", UTF8, NOT_NULL),
        ("key_sequence", pa.int32(), NOT_NULL),
        ("fk_key_name", UTF8, NULLABLE),
        ("pk_key_name", UTF8, NULLABLE),
        ("update_rule", pa.uint8(), NOT_NULL),
        ("delete_rule", pa.uint8(), NOT_NULL),
    ]


def test_sql_info_columns() -> None:
    info_name, value = schemas.SQL_INFO
    assert (info_name.name, info_name.type, info_name.nullable) == ("info_name", pa.uint32(), False)
    assert value.name == "value"
    assert value.nullable is False
    assert value.type.mode == "dense"


@pytest.mark.parametrize(
    ("code", "name", "value_type"),
    [
        (0, "string_value", pa.utf8()),
        (1, "bool_value", pa.bool_()),
        (2, "bigint_value", pa.int64()),
        (3, "int32_bitmask", pa.int32()),
        (4, "string_list", pa.list_(pa.utf8())),
        (5, "int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32()))),
    ],
)
def test_sql_info_union_members(code: int, name: str, value_type: pa.DataType) -> None:
    union = schemas.SQL_INFO_VALUE
    assert union.num_fields == 6
    assert union.type_codes[code] == code
    member = union.field(code)
    assert (member.name, member.type, member.nullable) == (name, value_type, False)
    assert schemas.InfoMember(code).name.lower() == name


def test_sql_info_nested_fields() -> None:
    string_list = schemas.SQL_INFO_VALUE.field(4).type
    assert (string_list.value_field.name, string_list.value_field.nullable) == ("item", True)
    int_map = schemas.SQL_INFO_VALUE.field(5).type
    assert (int_map.key_field.name, int_map.key_field.nullable) == ("key", False)
    assert (int_map.item_field.name, int_map.item_field.nullable) == ("value", True)


def test_xdbc_type_info() -> None:
    assert _fields(schemas.XDBC_TYPE_INFO) == [
        ("type_name", UTF8, NOT_NULL),
        ("data_type", pa.int32(), NOT_NULL),
        ("column_size", pa.int32(), NULLABLE),
        ("literal_prefix", UTF8, NULLABLE),
        ("literal_suffix", UTF8, NULLABLE),
        ("create_params", pa.list_(pa.field("item", UTF8, nullable=False)), NULLABLE),
        ("nullable", pa.int32(), NOT_NULL),
        ("case_sensitive", pa.bool_(), NOT_NULL),
        ("searchable", pa.int32(), NOT_NULL),
        ("unsigned_attribute", pa.bool_(), NULLABLE),
        ("fixed_prec_scale", pa.bool_(), NOT_NULL),
        ("auto_increment", pa.bool_(), NULLABLE),
        ("local_type_name", UTF8, NULLABLE),
        ("minimum_scale", pa.int32(), NULLABLE),
        ("maximum_scale", pa.int32(), NULLABLE),
        ("sql_data_type", pa.int32(), NOT_NULL),
        ("datetime_subcode", pa.int32(), NULLABLE),
        ("num_prec_radix", pa.int32(), NULLABLE),
        ("interval_precision", pa.int32(), NULLABLE),
    ]
    create_params = schemas.XDBC_TYPE_INFO.field("create_params").type
    assert create_params.value_field.nullable is False


@pytest.mark.parametrize(
    "schema",
    [
        schemas.CATALOGS,
        schemas.DB_SCHEMAS,
        schemas.TABLES,
        schemas.TABLES_WITH_SCHEMA,
        schemas.TABLE_TYPES,
        schemas.PRIMARY_KEYS,
        schemas.FOREIGN_KEYS,
        schemas.SQL_INFO,
        schemas.XDBC_TYPE_INFO,
    ],
)
def test_schemas_survive_ipc_and_carry_no_metadata(schema: pa.Schema) -> None:
    assert not schema.metadata
    restored = pa.ipc.read_schema(pa.py_buffer(schema.serialize()))
    assert restored.equals(schema, check_metadata=True)
