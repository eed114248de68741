"""SQLAlchemy and pandas against a real node, as Python BI tools use them: an engine from
a URL, schema reflection, ``pandas.read_sql`` of a query and of a table, parameters."""

from __future__ import annotations

from decimal import Decimal
from typing import Iterator

import pandas as pd
import pytest
import sqlalchemy
from sqlalchemy import inspect, text, types

from tests.integration.conftest import PASSWORD, USER, RunningNode

pytestmark = pytest.mark.integration


def _url(node: RunningNode, database: str = "") -> str:
    hostport = node.uri.split("://", 1)[1]
    return f"flightsql+spark://{USER}:{PASSWORD}@{hostport}/{database}"


@pytest.fixture(scope="module")
def engine(node: RunningNode) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(_url(node))
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS sqla")
        conn.exec_driver_sql("DROP TABLE IF EXISTS sqla.`order`")
        conn.exec_driver_sql(
            "CREATE TABLE sqla.`order` (id BIGINT, name STRING, price DECIMAL(10,2), at TIMESTAMP, "
            "day DATE, ok BOOLEAN, tags ARRAY<STRING>) USING parquet")
        conn.exec_driver_sql(
            "INSERT INTO sqla.`order` VALUES (1, 'tea', 2.50, TIMESTAMP'2026-01-02 03:04:05', "
            "DATE'2026-01-02', true, array('hot')), (2, 'cake', 4.25, NULL, NULL, false, array())")
        conn.exec_driver_sql("CREATE OR REPLACE VIEW sqla.cheap AS SELECT * FROM sqla.`order` WHERE price < 3")
    yield engine
    engine.dispose()


def test_the_url_names_the_dialect_registered_by_entry_point(engine: sqlalchemy.Engine) -> None:
    assert type(engine.dialect).__module__ == "flightsql.client.sqlalchemy"
    assert engine.dialect.name == "flightsql" and engine.dialect.driver == "spark"


def test_reflection_lists_schemas_tables_views_and_typed_columns(engine: sqlalchemy.Engine) -> None:
    inspector = inspect(engine)
    assert "sqla" in inspector.get_schema_names()
    assert inspector.get_table_names(schema="sqla") == ["order"]
    assert inspector.get_view_names(schema="sqla") == ["cheap"]
    assert inspector.has_table("order", schema="sqla")
    assert not inspector.has_table("nothing here", schema="sqla")
    columns = {c["name"]: c["type"] for c in inspector.get_columns("order", schema="sqla")}
    assert list(columns) == ["id", "name", "price", "at", "day", "ok", "tags"]
    assert isinstance(columns["id"], types.BigInteger)
    assert isinstance(columns["name"], types.String)
    assert isinstance(columns["price"], types.Numeric) and (columns["price"].precision, columns["price"].scale) == (10, 2)
    assert isinstance(columns["at"], types.DateTime) and columns["at"].timezone
    assert isinstance(columns["day"], types.Date)
    assert isinstance(columns["ok"], types.Boolean)
    assert inspector.get_pk_constraint("order", schema="sqla")["constrained_columns"] == []
    assert inspector.get_foreign_keys("order", schema="sqla") == []


def test_a_table_reflected_into_metadata_is_queried_with_quoting_and_parameters(engine: sqlalchemy.Engine) -> None:
    table = sqlalchemy.Table("order", sqlalchemy.MetaData(), schema="sqla", autoload_with=engine)
    query = sqlalchemy.select(table.c.name, table.c.price).where(table.c.id == 2)
    with engine.connect() as conn:
        assert conn.execute(query).fetchall() == [("cake", Decimal("4.25"))]
        rows = conn.execute(text("SELECT id FROM sqla.`order` WHERE name = :name OR price > :price ORDER BY id"),
                            {"name": "tea", "price": 4}).fetchall()
        assert rows == [(1,), (2,)]


def test_pandas_read_sql_of_a_query_and_of_a_table(engine: sqlalchemy.Engine) -> None:
    frame = pd.read_sql(text("SELECT id, name FROM sqla.`order` WHERE id >= :low ORDER BY id"), engine,
                        params={"low": 1})
    assert frame.to_dict("list") == {"id": [1, 2], "name": ["tea", "cake"]}
    whole = pd.read_sql_table("order", engine, schema="sqla")
    assert sorted(whole["name"]) == ["cake", "tea"]
    assert list(whole.columns) == ["id", "name", "price", "at", "day", "ok", "tags"]


def test_the_database_of_the_url_is_the_session_schema(node: RunningNode, engine: sqlalchemy.Engine) -> None:
    scoped = sqlalchemy.create_engine(_url(node, "spark_catalog.sqla"))
    try:
        with scoped.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM cheap")).scalar() == 1
            assert scoped.dialect.default_schema_name == "sqla"
    finally:
        scoped.dispose()


def test_a_wrong_password_is_an_error_naming_it(node: RunningNode) -> None:
    hostport = node.uri.split("://", 1)[1]
    wrong = sqlalchemy.create_engine(f"flightsql+spark://{USER}:not-it@{hostport}/")
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="(?i)unauthenticated|invalid"):
        with wrong.connect() as conn:
            conn.execute(text("SELECT 1"))
