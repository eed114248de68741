"""A SQLAlchemy dialect for this server: ``flightsql+spark://user:password@host:port/catalog.schema``.

It speaks through the ADBC Flight SQL driver's DB-API module, with Spark SQL's
backquoted identifiers, ``?`` parameters and types, and reflects schemas, tables, views
and columns with Spark's own ``SHOW`` and ``DESCRIBE``.  Registered with SQLAlchemy by
the ``sqlalchemy.dialects`` entry point ``flightsql.spark``; pandas ``read_sql``,
Superset and notebooks use it like any other.

URL query options: ``tls=true`` (``grpc+tls://``), ``tls_root_certs=PATH`` (PEM file of
the CAs to trust; implies TLS), ``token=...`` (a bearer token instead of a password).
The database part, ``catalog.schema`` or ``schema``, becomes the session's current
catalog and schema (Flight SQL session options).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.engine import URL, default
from sqlalchemy.engine.interfaces import (
    ReflectedColumn,
    ReflectedForeignKeyConstraint,
    ReflectedIndex,
    ReflectedPrimaryKeyConstraint,
)
from sqlalchemy.sql import compiler

DEFAULT_PORT = 31337

_SIMPLE_TYPES: dict[str, Any] = {
    "boolean": sqltypes.Boolean, "tinyint": sqltypes.SmallInteger, "byte": sqltypes.SmallInteger,
    "smallint": sqltypes.SmallInteger, "short": sqltypes.SmallInteger, "int": sqltypes.Integer,
    "integer": sqltypes.Integer, "bigint": sqltypes.BigInteger, "long": sqltypes.BigInteger,
    "float": sqltypes.Float, "real": sqltypes.Float, "double": sqltypes.Double, "date": sqltypes.Date,
    "timestamp_ntz": sqltypes.DateTime, "string": sqltypes.String, "binary": sqltypes.LargeBinary,
    "void": sqltypes.NullType,
}


def spark_type(text: str) -> sqltypes.TypeEngine[Any]:
    """The SQLAlchemy type of a Spark SQL type as ``DESCRIBE`` writes it."""
    name = text.strip().lower()
    if name in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[name]()  # type: ignore[no-any-return]
    if name in ("timestamp", "timestamp_ltz"):
        return sqltypes.DateTime(timezone=True)
    decimal = re.fullmatch(r"(?:decimal|dec|numeric)(?:\((\d+)\s*,\s*(\d+)\))?", name)
    if decimal:
        precision, scale = decimal.groups()
        return sqltypes.Numeric(int(precision or 10), int(scale or 0))
    text_type = re.fullmatch(r"(?:varchar|char)\((\d+)\)", name)
    if text_type:
        return sqltypes.String(int(text_type.group(1)))
    if name.startswith("interval"):
        return sqltypes.Interval()
    return sqltypes.NullType()  # arrays, maps, structs: no SQLAlchemy type says more


class SparkIdentifierPreparer(compiler.IdentifierPreparer):
    """Spark quotes identifiers with backquotes, doubled inside."""

    def __init__(self, dialect: default.DefaultDialect) -> None:
        super().__init__(dialect, initial_quote="`", escape_quote="`")


class SparkFlightSqlDialect(default.DefaultDialect):
    name = "flightsql"
    driver = "spark"
    preparer = SparkIdentifierPreparer  # type: ignore[assignment]  # a subclass; SQLAlchemy's stub disagrees
    paramstyle = "qmark"
    supports_statement_cache = True
    supports_native_boolean = True
    supports_native_decimal = True
    supports_sequences = False
    supports_identity_columns = False
    postfetch_lastrowid = False
    supports_multivalues_insert = True
    default_schema_name = "default"

    @classmethod
    def import_dbapi(cls) -> Any:
        try:
            import adbc_driver_flightsql.dbapi
        except ImportError:
            raise ImportError(
                "the flightsql+spark dialect runs on the ADBC Flight SQL driver: "
                "pip install 'spark-flightsql[sqlalchemy]'"
            ) from None
        return adbc_driver_flightsql.dbapi

    def create_connect_args(self, url: URL) -> tuple[list[Any], dict[str, Any]]:
        options = dict(url.query)
        roots = options.pop("tls_root_certs", None)
        tls = str(options.pop("tls", "false")).lower() in ("1", "true", "yes") or roots is not None
        host = url.host or "127.0.0.1"
        uri = f"{'grpc+tls' if tls else 'grpc'}://{f'[{host}]' if ':' in host else host}:{url.port or DEFAULT_PORT}"
        db_kwargs: dict[str, str] = {}
        if url.username:
            db_kwargs["username"] = url.username
            db_kwargs["password"] = url.password or ""
        token = options.pop("token", None)
        if token:
            db_kwargs["adbc.flight.sql.authorization_header"] = f"Bearer {token}"
        if roots is not None:
            db_kwargs["adbc.flight.sql.client_option.tls_root_certs"] = Path(str(roots)).read_text()
        if options:
            raise ValueError(f"unknown option(s) in the URL: {', '.join(sorted(options))}; "
                             "the options are tls, tls_root_certs and token")
        conn_kwargs: dict[str, str] = {}
        if url.database:
            catalog, _, schema = url.database.rpartition(".")
            if catalog:
                conn_kwargs["adbc.connection.catalog"] = catalog
            conn_kwargs["adbc.connection.db_schema"] = schema
        return [uri], {"db_kwargs": db_kwargs, "conn_kwargs": conn_kwargs, "autocommit": True}

    # Spark has no transactions: every statement commits on its own
    def do_begin(self, dbapi_connection: Any) -> None:
        pass

    def do_commit(self, dbapi_connection: Any) -> None:
        pass

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...] | None:
        return None

    def _get_default_schema_name(self, connection: Any) -> str:
        return str(connection.exec_driver_sql("SELECT current_database()").scalar())

    def _quote(self, *names: str) -> str:
        return ".".join(self.identifier_preparer.quote_identifier(name) for name in names)

    def get_schema_names(self, connection: Any, **kw: Any) -> list[str]:
        return [row[0] for row in connection.exec_driver_sql("SHOW SCHEMAS")]

    def _tables(self, connection: Any, schema: str | None, views: bool) -> list[str]:
        where = f" IN {self._quote(schema)}" if schema else ""
        rows = connection.exec_driver_sql(f"SHOW {'VIEWS' if views else 'TABLES'}{where}").fetchall()
        # SHOW TABLES lists temporary views too (isTemporary); they belong to no schema
        return [row[1] for row in rows if not row[-1]] if not views else [row[1] for row in rows]

    def get_table_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        views = set(self._tables(connection, schema, views=True))
        return [name for name in self._tables(connection, schema, views=False) if name not in views]

    def get_view_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        return self._tables(connection, schema, views=True)

    def has_table(self, connection: Any, table_name: str, schema: str | None = None, **kw: Any) -> bool:
        return table_name in self._tables(connection, schema, views=False)

    def get_columns(self, connection: Any, table_name: str, schema: str | None = None,
                    **kw: Any) -> list[ReflectedColumn]:
        name = self._quote(schema, table_name) if schema else self._quote(table_name)
        columns: list[ReflectedColumn] = []
        for column, kind, comment in connection.exec_driver_sql(f"DESCRIBE TABLE {name}").fetchall():
            if not column or column.startswith("#"):
                break  # partition and detail sections follow the columns
            columns.append({"name": column, "type": spark_type(kind), "nullable": True, "default": None,
                            "comment": comment or None})
        return columns

    def get_pk_constraint(self, connection: Any, table_name: str, schema: str | None = None,
                          **kw: Any) -> ReflectedPrimaryKeyConstraint:
        return {"constrained_columns": [], "name": None}

    def get_foreign_keys(self, connection: Any, table_name: str, schema: str | None = None,
                         **kw: Any) -> list[ReflectedForeignKeyConstraint]:
        return []

    def get_indexes(self, connection: Any, table_name: str, schema: str | None = None,
                    **kw: Any) -> list[ReflectedIndex]:
        return []
