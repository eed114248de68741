"""Catalog metadata from Spark: catalogs, namespaces (nested too), tables, keys.

Every catalog Spark knows is listed; namespaces are walked recursively where a
catalog nests them, and a nested namespace is reported dotted (``a.b``) as its
db_schema_name.  Filters are SQL LIKE patterns (``flightsql.catalog.patterns``).
Spark has no primary or foreign keys, so the key commands answer with the right
schema and no rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from flightsql.catalog import schemas
from flightsql.catalog.patterns import matches
from flightsql.errors import NotFound

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Spark's table types mapped to the names JDBC and ODBC clients know
TABLE_TYPE_NAMES = {
    "MANAGED": "TABLE",
    "EXTERNAL": "TABLE",
    "VIEW": "VIEW",
    "TEMPORARY": "LOCAL TEMPORARY",
    "MATERIALIZED_VIEW": "MATERIALIZED VIEW",
}
TABLE_TYPES = ("LOCAL TEMPORARY", "MATERIALIZED VIEW", "TABLE", "VIEW")


def quote(part: str) -> str:
    return "`" + part.replace("`", "``") + "`"


def qualified(*parts: str) -> str:
    return ".".join(quote(p) for p in parts if p)


def catalog_names(spark: SparkSession) -> list[str]:
    return sorted(c.name for c in spark.catalog.listCatalogs())


def catalogs(spark: SparkSession) -> pa.Table:
    return pa.Table.from_pydict({"catalog_name": catalog_names(spark)}, schema=schemas.CATALOGS)


def _child_namespaces(spark: SparkSession, catalog: str, parent: tuple[str, ...]) -> list[tuple[str, ...]]:
    target = qualified(catalog, *parent)
    try:
        rows = spark.sql(f"SHOW NAMESPACES IN {target}").collect()
    except Exception:  # noqa: BLE001 - a namespace that cannot nest has no children
        return []
    children = []
    for row in rows:
        name = row[0]
        # Multi-part names come back quoted and dotted; keep the last part as the child.
        part = _split(name)[-1]
        children.append((*parent, part))
    return children


def _split(name: str) -> list[str]:
    parts, current, quoted, i = [], "", False, 0
    while i < len(name):
        ch = name[i]
        if ch == "`":
            if quoted and name[i + 1 : i + 2] == "`":
                current += "`"
                i += 1
            else:
                quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    return parts


def namespaces(spark: SparkSession, catalog: str) -> Iterator[tuple[str, ...]]:
    """Every namespace of ``catalog``, depth first."""
    pending = _child_namespaces(spark, catalog, ())
    seen = set()
    while pending:
        namespace = pending.pop(0)
        if namespace in seen:
            continue
        seen.add(namespace)
        yield namespace
        if catalog != "spark_catalog":  # the session catalog does not nest namespaces
            pending[:0] = _child_namespaces(spark, catalog, namespace)


def _catalogs_matching(spark: SparkSession, catalog: str | None) -> list[str]:
    names = catalog_names(spark)
    if catalog is None:
        return names
    return [c for c in names if c == catalog]


def db_schemas(spark: SparkSession, catalog: str | None, pattern: str | None) -> pa.Table:
    rows: dict[str, list[str]] = {"catalog_name": [], "db_schema_name": []}
    for name in _catalogs_matching(spark, catalog):
        for namespace in namespaces(spark, name):
            dotted = ".".join(namespace)
            if matches(pattern, dotted):
                rows["catalog_name"].append(name)
                rows["db_schema_name"].append(dotted)
    return pa.Table.from_pydict(rows, schema=schemas.DB_SCHEMAS)


@dataclass(frozen=True)
class TableEntry:
    catalog: str | None
    db_schema: str | None
    name: str
    table_type: str

    def reference(self) -> str:
        if self.catalog is None:
            return quote(self.name)
        schema_parts = (quote(p) for p in (self.db_schema or "").split(".") if p)
        return ".".join([quote(self.catalog), *schema_parts, quote(self.name)])


def table_entries(
    spark: SparkSession,
    catalog: str | None,
    schema_pattern: str | None,
    table_pattern: str | None,
    table_types: tuple[str, ...],
) -> list[TableEntry]:
    entries: list[TableEntry] = []
    wanted = set(table_types)
    for cat in _catalogs_matching(spark, catalog):
        for namespace in namespaces(spark, cat):
            dotted = ".".join(namespace)
            if not matches(schema_pattern, dotted):
                continue
            for table in spark.catalog.listTables(qualified(cat, *namespace)):
                if table.isTemporary:
                    continue  # reported once below, outside any catalog
                kind = TABLE_TYPE_NAMES.get(table.tableType or "", table.tableType or "TABLE")
                if matches(table_pattern, table.name) and (not wanted or kind in wanted):
                    entries.append(TableEntry(cat, dotted, table.name, kind))
    if catalog is None and schema_pattern in (None, "%") and (not wanted or "LOCAL TEMPORARY" in wanted):
        for table in spark.catalog.listTables():
            if table.isTemporary and not table.namespace and matches(table_pattern, table.name):
                entries.append(TableEntry(None, None, table.name, "LOCAL TEMPORARY"))
    entries.sort(key=lambda e: (e.catalog or "", e.db_schema or "", e.name, e.table_type))
    return entries


def tables(
    spark: SparkSession,
    catalog: str | None,
    schema_pattern: str | None,
    table_pattern: str | None,
    table_types: tuple[str, ...],
    include_schema: bool,
) -> pa.Table:
    from flightmanager.manager import arrow_schema

    entries = table_entries(spark, catalog, schema_pattern, table_pattern, table_types)
    columns: dict[str, list[Any]] = {
        "catalog_name": [e.catalog for e in entries],
        "db_schema_name": [e.db_schema for e in entries],
        "table_name": [e.name for e in entries],
        "table_type": [e.table_type for e in entries],
    }
    if include_schema:
        columns["table_schema"] = [
            arrow_schema(spark.table(e.reference())).serialize().to_pybytes() for e in entries
        ]
        return pa.Table.from_pydict(columns, schema=schemas.TABLES_WITH_SCHEMA)
    return pa.Table.from_pydict(columns, schema=schemas.TABLES)


def table_types() -> pa.Table:
    return pa.Table.from_pydict({"table_type": list(TABLE_TYPES)}, schema=schemas.TABLE_TYPES)


def check_table(spark: SparkSession, catalog: str | None, db_schema: str | None, table: str) -> None:
    """NOT_FOUND unless the table exists (for the key commands)."""
    parts = [p for p in (catalog, *(db_schema.split(".") if db_schema else ())) if p] + [table]
    if not spark.catalog.tableExists(".".join(quote(p) for p in parts)):
        raise NotFound(f"table {'.'.join(parts)} not found")


def primary_keys() -> pa.Table:
    return schemas.PRIMARY_KEYS.empty_table()


def foreign_keys() -> pa.Table:
    return schemas.FOREIGN_KEYS.empty_table()
