"""Arrow on the way into Spark: the schema Spark gets, and batches made to fit it exactly."""

from __future__ import annotations

import datetime
import decimal
import pickle

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from pyspark.sql.types import (
    DecimalType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from datasource.errors import FlightSqlSchemaError
from datasource.reader import EndpointPartition, _locations, arrow_schema, conform
from datasource.source import spark_schema


def test_spark_schema_follows_the_server() -> None:
    arrow = pa.schema([
        pa.field("id", pa.int64(), nullable=False),
        pa.field("label", pa.large_string()),
        pa.field("at", pa.timestamp("us", tz="America/New_York")),
        pa.field("local", pa.timestamp("us")),
        pa.field("small", pa.uint8()),
        pa.field("count", pa.uint32()),
        pa.field("huge", pa.uint64()),
    ])
    assert spark_schema(arrow) == StructType([
        StructField("id", LongType(), False),
        StructField("label", StringType()),
        StructField("at", TimestampType()),
        StructField("local", TimestampNTZType()),
        StructField("small", ShortType()),
        StructField("count", LongType()),
        StructField("huge", DecimalType(20, 0)),
    ])


def test_a_type_spark_lacks_is_named_with_its_column() -> None:
    with pytest.raises(FlightSqlSchemaError, match="column 'ratio' has Arrow type halffloat"):
        spark_schema(pa.schema([pa.field("ratio", pa.float16())]))


def test_batches_are_cast_to_what_spark_expects() -> None:
    server = pa.schema([
        pa.field("id", pa.int64(), nullable=False),
        pa.field("label", pa.large_string()),
        pa.field("at", pa.timestamp("us", tz="America/New_York")),
        pa.field("huge", pa.uint64()),
    ])
    instant = datetime.datetime(2024, 3, 10, 7, 30, tzinfo=datetime.timezone.utc)
    batch = pa.record_batch(
        [pa.array([1, 2]), pa.array(["a", None], pa.large_string()), pa.array([instant, None]).cast(server.field("at").type),
         pa.array([2**64 - 1, 0], pa.uint64())],
        schema=server,
    )
    target = arrow_schema(spark_schema(server))
    fitted = conform(batch, target)
    assert fitted.schema.equals(target)
    assert target.field("at").type == pa.timestamp("us", tz="UTC")
    assert fitted.column("at")[0].as_py() == instant  # the same instant, shown in UTC
    assert fitted.column("huge").to_pylist() == [decimal.Decimal(2**64 - 1), decimal.Decimal(0)]
    assert conform(fitted, target) is fitted  # nothing to do when it already fits


def test_columns_are_matched_by_name_then_by_position() -> None:
    target = arrow_schema(StructType([StructField("b", IntegerType()), StructField("a", StringType())]))
    by_name = conform(pa.record_batch({"a": ["x"], "b": [7]}), target)
    assert by_name.to_pylist() == [{"b": 7, "a": "x"}]
    by_position = conform(pa.record_batch({"B": [7], "A": ["x"]}), target)
    assert by_position.to_pylist() == [{"b": 7, "a": "x"}]
    with pytest.raises(FlightSqlSchemaError, match="the server sent columns"):
        conform(pa.record_batch({"c": [1]}), target)


def test_a_value_that_does_not_convert_is_an_error() -> None:
    target = arrow_schema(StructType([StructField("n", IntegerType())]))
    with pytest.raises(FlightSqlSchemaError, match="column 'n': the server sent string"):
        conform(pa.record_batch({"n": ["seven"]}), target)


def test_an_endpoint_partition_travels_to_executors() -> None:
    endpoint = flight.FlightEndpoint(b"ticket-1", ["grpc://node-b:31337"])
    info = flight.FlightInfo(pa.schema([("id", pa.int64())]), flight.FlightDescriptor.for_command(b"q"), [endpoint], -1, -1)
    serialized = info.serialize()
    assert _locations(serialized) == ("grpc://node-b:31337",)
    assert _locations(b"not a FlightInfo") == ()
    partition = pickle.loads(pickle.dumps(EndpointPartition(1, serialized, _locations(serialized))))
    assert (partition.index, partition.endpoint, partition.locations) == (1, serialized, ("grpc://node-b:31337",))
    assert "grpc://node-b:31337" in repr(partition)
