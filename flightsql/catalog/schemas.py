"""Arrow schemas of the Flight SQL catalog metadata results.

Each constant is the exact result schema of one metadata command, as
``FlightSql.proto`` documents it above the command message: field names,
types and nullability all matter, because some clients compare the schema they
receive with their own copy field by field (the ADBC Flight SQL driver does so
for catalogs, database schemas and tables, the C++ driver for SqlInfo).

Where the comments in ``FlightSql.proto`` leave room, the schemas follow the
reference servers of the Arrow project (C++, Java and Go agree with each other):

* ``PRIMARY_KEYS`` puts ``key_sequence`` before ``key_name``; the proto comment
  lists them the other way round, but every reference implementation and the
  JDBC ``getPrimaryKeys`` column order (``KEY_SEQ`` then ``PK_NAME``) use this order.
* The six members of the SqlInfo ``value`` union are declared non-nullable, with
  type codes 0 to 5 in declaration order, and ``value`` itself is non-nullable.
"""

from __future__ import annotations

import enum

import pyarrow as pa

__all__ = [
    "CATALOGS",
    "DB_SCHEMAS",
    "FOREIGN_KEYS",
    "PRIMARY_KEYS",
    "SQL_INFO",
    "SQL_INFO_VALUE",
    "TABLES",
    "TABLES_WITH_SCHEMA",
    "TABLE_TYPES",
    "XDBC_TYPE_INFO",
    "InfoMember",
]


def _utf8(name: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, pa.utf8(), nullable=nullable)


class InfoMember(enum.IntEnum):
    """Type codes of the members of the SqlInfo ``value`` dense union."""

    STRING_VALUE = 0
    BOOL_VALUE = 1
    BIGINT_VALUE = 2
    INT32_BITMASK = 3
    STRING_LIST = 4
    INT32_TO_INT32_LIST_MAP = 5


#: ``CommandGetCatalogs``; ordered by ``catalog_name``.
CATALOGS: pa.Schema = pa.schema([_utf8("catalog_name", nullable=False)])

#: ``CommandGetDbSchemas``; ordered by ``catalog_name`` then ``db_schema_name``.
DB_SCHEMAS: pa.Schema = pa.schema(
    [_utf8("catalog_name"), _utf8("db_schema_name", nullable=False)]
)

_TABLE_FIELDS: list[pa.Field] = [
    _utf8("catalog_name"),
    _utf8("db_schema_name"),
    _utf8("table_name", nullable=False),
    _utf8("table_type", nullable=False),
]

#: ``CommandGetTables`` without ``include_schema``.
TABLES: pa.Schema = pa.schema(_TABLE_FIELDS)

#: ``CommandGetTables`` with ``include_schema``: ``table_schema`` holds the
#: table's Arrow schema serialized as an IPC schema message.
TABLES_WITH_SCHEMA: pa.Schema = pa.schema(
    [*_TABLE_FIELDS, pa.field("table_schema", pa.binary(), nullable=False)]
)

#: ``CommandGetTableTypes``; ordered by ``table_type``.
TABLE_TYPES: pa.Schema = pa.schema([_utf8("table_type", nullable=False)])

#: ``CommandGetPrimaryKeys``.
PRIMARY_KEYS: pa.Schema = pa.schema(
    [
        _utf8("catalog_name"),
        _utf8("db_schema_name"),
        _utf8("table_name", nullable=False),
        _utf8("column_name", nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        _utf8("key_name"),
    ]
)

#: ``CommandGetExportedKeys``, ``CommandGetImportedKeys`` and
#: ``CommandGetCrossReference`` share this schema.  ``update_rule`` and
#: ``delete_rule`` hold ``UpdateDeleteRules`` values.
FOREIGN_KEYS: pa.Schema = pa.schema(
    [
        _utf8("pk_catalog_name"),
        _utf8("pk_db_schema_name"),
        _utf8("pk_table_name", nullable=False),
        _utf8("pk_column_name", nullable=False),
        _utf8("fk_catalog_name"),
        _utf8("fk_db_schema_name"),
        _utf8("fk_table_name", nullable=False),
        _utf8("fk_column_name", nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        _utf8("fk_key_name"),
        _utf8("pk_key_name"),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)

#: The ``value`` column of ``CommandGetSqlInfo``.
SQL_INFO_VALUE: pa.DenseUnionType = pa.dense_union(
    [
        pa.field("string_value", pa.utf8(), nullable=False),
        pa.field("bool_value", pa.bool_(), nullable=False),
        pa.field("bigint_value", pa.int64(), nullable=False),
        pa.field("int32_bitmask", pa.int32(), nullable=False),
        pa.field("string_list", pa.list_(pa.utf8()), nullable=False),
        pa.field(
            "int32_to_int32_list_map",
            pa.map_(pa.int32(), pa.list_(pa.int32())),
            nullable=False,
        ),
    ],
    type_codes=[int(member) for member in InfoMember],
)

#: ``CommandGetSqlInfo``: one row per answered info id.
SQL_INFO: pa.Schema = pa.schema(
    [
        pa.field("info_name", pa.uint32(), nullable=False),
        pa.field("value", SQL_INFO_VALUE, nullable=False),
    ]
)

#: ``CommandGetXdbcTypeInfo``; ordered by ``data_type`` then ``type_name``.
XDBC_TYPE_INFO: pa.Schema = pa.schema(
    [
        _utf8("type_name", nullable=False),
        pa.field("data_type", pa.int32(), nullable=False),
        pa.field("column_size", pa.int32()),
        _utf8("literal_prefix"),
        _utf8("literal_suffix"),
        pa.field("create_params", pa.list_(pa.field("item", pa.utf8(), nullable=False))),
        pa.field("nullable", pa.int32(), nullable=False),
        pa.field("case_sensitive", pa.bool_(), nullable=False),
        pa.field("searchable", pa.int32(), nullable=False),
        pa.field("unsigned_attribute", pa.bool_()),
        pa.field("fixed_prec_scale", pa.bool_(), nullable=False),
        pa.field("auto_increment", pa.bool_()),
        _utf8("local_type_name"),
        pa.field("minimum_scale", pa.int32()),
        pa.field("maximum_scale", pa.int32()),
        pa.field("sql_data_type", pa.int32(), nullable=False),
        pa.field("datetime_subcode", pa.int32()),
        pa.field("num_prec_radix", pa.int32()),
        pa.field("interval_precision", pa.int32()),
    ]
)
