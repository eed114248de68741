"""A small demo data set so a new node has something to query."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEMO_SQL = """
CREATE TABLE IF NOT EXISTS demo.trips USING parquet AS
SELECT id AS trip_id,
       CAST(date'2024-01-01' + CAST(id % 366 AS INT) AS DATE) AS trip_date,
       element_at(array('Berlin','Lisbon','Osaka','Quito','Tunis'), CAST(id % 5 AS INT) + 1) AS city,
       CAST(round(2.5 + (id * 7919 % 4000) / 100.0, 2) AS DECIMAL(8,2)) AS fare,
       (id * 31) % 90 + 1 AS minutes
FROM range(100000)
"""


def create_demo_tables(spark: SparkSession) -> None:
    spark.sql("CREATE DATABASE IF NOT EXISTS demo")
    spark.sql(DEMO_SQL)
