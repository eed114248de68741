"""The ``flightsql`` Spark data source against a real two-node cluster of this project.

What reached the server is read where the server keeps it: every query's SQL is in its
record in ZooKeeper, and each node logs the rows every stream it served carried.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pyarrow.flight as flight
import pytest
from kazoo.exceptions import NoNodeError

from flightmanager.zk.paths import Paths
from flightmanager.zk.registry import QueryInfo
from tests.integration.conftest import PASSWORD, USER, RunningNode, _add_user, start_node, stop_node, wait_until
from tests.integration.status import WatchedNode, status_url
from tests.integration.zookeeper import ZooKeeperServer, running_zookeeper

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHROOT = "/datasource-test"
SPREAD_SQL = "SELECT id, id % 7 AS bucket, CAST(id AS STRING) AS label FROM range(0, {n}, 1, 4)"


class Cluster:
    def __init__(self, nodes: list[RunningNode], zookeeper: ZooKeeperServer) -> None:
        self.nodes = nodes
        self.uri = nodes[0].uri
        self.zk = zookeeper.client(CHROOT)
        self.watched = WatchedNode(nodes[0], status_url(nodes[0]))
        wait_until(lambda: len(self._node_ids()) == len(nodes), 60, "the first node to see the other")
        self.node_ids = self._node_ids()

    def _node_ids(self) -> set[str]:
        return {n["node_id"] for n in self.watched.get_json("api/status")["nodes"]}

    def queries_with(self, text: str) -> list[QueryInfo]:
        """The query records whose SQL holds ``text``, oldest first."""
        paths = Paths()
        found = []
        for query_id in self.zk.get_children(paths.queries):
            try:
                data, _ = self.zk.get(paths.query(query_id))
            except NoNodeError:  # expired meanwhile
                continue
            info = QueryInfo.from_bytes(data)
            if text in info.sql:
                found.append(info)
        return sorted(found, key=lambda q: q.created)

    def served(self, query_id: str) -> dict[str, dict[str, int]]:
        """Per node, what it served of the query, as the status API tells (streams end first)."""
        served = self.watched.served(query_id)
        return {node: served.get(node, {"rows": 0, "bytes": 0, "streams": 0}) for node in self.node_ids}


@pytest.fixture(scope="module")
def starting_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ZooKeeperServer, list[Future[RunningNode]]]]:
    """Two nodes on one ZooKeeper and one Hive metastore (their tables are the same tables),
    starting in the background while the test's Spark starts."""
    from flightsql.cluster import EmbeddedMetastore

    base = tmp_path_factory.mktemp("datasource")
    metastore = EmbeddedMetastore(base / "metastore").start()
    try:
        with running_zookeeper(base / "zookeeper") as zookeeper:
            yield from _starting_nodes(base, zookeeper, metastore.uri)
    finally:
        metastore.stop()


def _starting_nodes(base: Path, zookeeper: ZooKeeperServer,
                    metastore: str) -> Iterator[tuple[ZooKeeperServer, list[Future[RunningNode]]]]:
    users = base / "users"
    _add_user(users, USER, PASSWORD)
    args = ("--users", str(users), *zookeeper.node_args(CHROOT), "--result-ttl", "120", "--metastore", metastore,
            "--execution-mode", "distributed", "--conf", "spark.driver.memory=640m", "--master", "local[2]",
            "--http-port", "0")
    with ThreadPoolExecutor(2) as pool:
        starting = [pool.submit(start_node, base / f"node{i}", *args) for i in range(2)]
        yield zookeeper, starting
        for future in starting:
            node = future.result()
            if node.process.poll() is None:
                stop_node(node)


@pytest.fixture(scope="module")
def cluster(starting_cluster: tuple[ZooKeeperServer, list[Future[RunningNode]]]) -> Iterator[Cluster]:
    zookeeper, starting = starting_cluster
    running = Cluster([future.result() for future in starting], zookeeper)
    yield running
    running.zk.stop()


@pytest.fixture(scope="module")
def spark(spark: Any, starting_cluster: Any) -> Any:
    """The shared test SparkSession (local[1,4]: tasks may be retried; Python filter pushdown
    on), with the data source registered."""
    from datasource import FlightSqlDataSource

    assert spark.conf.get("spark.sql.python.filterPushdown.enabled") == "true"
    spark.dataSource.register(FlightSqlDataSource)
    return spark


def _read(spark: Any, cluster: Cluster, **options: str) -> Any:
    base = {"uri": cluster.uri, "user": USER, "password": PASSWORD}
    return spark.read.format("flightsql").options(**{**base, **options}).load()


def _rows(df: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in df.collect())


def _error(action: Any) -> str:
    with pytest.raises(Exception) as caught:
        action()
    return str(caught.value)


def test_every_endpoint_is_a_partition_read_in_parallel(spark: Any, cluster: Cluster) -> None:
    from pyspark.sql import functions as F

    sql = SPREAD_SQL.format(n=40_000)
    df = _read(spark, cluster, query=sql)
    assert df.rdd.getNumPartitions() == len(cluster.nodes)  # one endpoint per live node

    tagged = df.withColumn("part", F.spark_partition_id()).collect()
    per_partition = {p: sum(1 for r in tagged if r["part"] == p) for p in range(len(cluster.nodes))}
    assert all(count > 0 for count in per_partition.values()), per_partition
    assert sorted(tuple(r)[:3] for r in tagged) == _rows(spark.sql(sql))

    # each node streamed its own share of the last query: both served rows
    query = cluster.queries_with(sql)[-1]
    wait_until(lambda: all(s["rows"] > 0 for s in cluster.served(query.query_id).values()), 30,
               "every node's stream to end, rows served")


def test_pushed_filters_reach_the_server_and_the_rest_stays_in_spark(spark: Any, cluster: Cluster) -> None:
    from pyspark.sql import functions as F

    sql = SPREAD_SQL.format(n=30_011)
    conditions = [
        F.col("id") >= 1000,
        F.col("id") < 20000,
        F.col("bucket").isin(1, 2),
        F.col("label").startswith("1"),
        F.col("label") != "it's",  # a quote: not pushed
        F.col("id") % 3 == 0,  # an expression: not pushed
        (F.col("bucket") == 1) | (F.col("id") == 5),  # a disjunction: Spark offers no such filter
    ]
    ours, theirs = _read(spark, cluster, query=sql, pushFilters="true"), spark.sql(sql)
    for condition in conditions:
        ours, theirs = ours.filter(condition), theirs.filter(condition)
    expected = _rows(theirs)
    assert expected and _rows(ours) == expected

    sent = cluster.queries_with(sql)[-1].sql
    where = sent.split(" WHERE ", 1)[1]
    assert sent.startswith("SELECT * FROM (\n" + sql + "\n) AS ")
    for pushed in ("(`id` >= 1000)", "(`id` < 20000)", "(`bucket` IN (1, 2))", "(`label` LIKE '1%' ESCAPE '!')"):
        assert pushed in where, sent
    assert "it's" not in sent and "% 3" not in where and " OR " not in where.upper()


def test_a_given_schema_selects_only_its_columns(spark: Any, cluster: Cluster) -> None:
    from pyspark.sql import functions as F

    # Spark's Python data sources cannot prune columns; a schema given by the user narrows the SELECT.
    # It retypes id as a string: a filter on id then compares strings, which only Spark can do.
    sql = SPREAD_SQL.format(n=20_003)
    df = spark.read.format("flightsql").schema("label STRING, id STRING").options(
        uri=cluster.uri, user=USER, password=PASSWORD, query=sql, pushFilters="true").load()
    conditions = (F.col("label").startswith("19"), F.col("id") > "195")
    expected = spark.sql(sql).select("label", F.col("id").cast("string"))
    for condition in conditions:
        df, expected = df.filter(condition), expected.filter(condition)
    assert _rows(df) == _rows(expected) and len(_rows(expected)) > 100
    sent = cluster.queries_with(sql)[-1].sql
    assert sent.startswith("SELECT `label`, `id` FROM (\n" + sql), sent
    assert "(`label` LIKE '19%' ESCAPE '!')" in sent and "`id` >" not in sent, sent


def test_filters_stay_in_spark_without_push_filters(spark: Any, cluster: Cluster) -> None:
    from pyspark.sql import functions as F

    sql = SPREAD_SQL.format(n=20_017)
    df = _read(spark, cluster, query=sql).filter(F.col("bucket") == 4)
    assert _rows(df) == _rows(spark.sql(sql).filter(F.col("bucket") == 4))
    assert cluster.queries_with(sql)[-1].sql == sql  # the user's own SQL, untouched


def test_a_retried_task_reads_its_endpoint_again(spark: Any, cluster: Cluster) -> None:
    from pyspark import TaskContext
    from pyspark.sql import functions as F

    @F.udf("long")
    def fail_first_attempt(value):  # type: ignore[no-untyped-def]  # (type hints would make it a pandas UDF)
        context = TaskContext.get()
        if context is not None and context.attemptNumber() == 0:
            raise RuntimeError("first attempt fails on purpose")
        return value

    sql = SPREAD_SQL.format(n=24_001)
    df = _read(spark, cluster, query=sql).select(fail_first_attempt("id").alias("id"), "label")
    assert _rows(df) == _rows(spark.sql(sql).select("id", "label"))  # none lost, none twice

    query = cluster.queries_with(sql)[-1]
    # each endpoint was streamed once by the failed attempt and once more by the retry
    wait_until(lambda: all(s["streams"] >= 2 for s in cluster.served(query.query_id).values()), 30,
               "both attempts' streams on every node")


def test_a_bearer_token_logs_in(spark: Any, cluster: Cluster) -> None:
    client = flight.connect(cluster.uri)
    _, bearer = client.authenticate_basic_token(USER, PASSWORD)
    token = bearer.decode().split(" ", 1)[1]
    client.close()
    df = spark.read.format("flightsql").options(uri=cluster.uri, token=token, query="SELECT 41 + 1 AS answer").load()
    assert df.collect()[0]["answer"] == 42


def test_wrong_or_missing_credentials_are_refused_clearly(spark: Any, cluster: Cluster) -> None:
    wrong = _error(lambda: _read(spark, cluster, query="SELECT 1", password="not-the-password").collect())
    assert "UNAUTHENTICATED" in wrong and "FlightSqlServerError" in wrong, wrong
    missing = _error(lambda: spark.read.format("flightsql").options(uri=cluster.uri, query="SELECT 1").load())
    assert "UNAUTHENTICATED" in missing, missing


def test_write_appends_and_overwrites_from_many_partitions(spark: Any, cluster: Cluster) -> None:
    from pyspark.sql import functions as F

    def write(df: Any, mode: str) -> None:
        df.write.format("flightsql").options(uri=cluster.uri, user=USER, password=PASSWORD,
                                              table="default.ds_written").mode(mode).save()

    def read_back() -> list[tuple[Any, ...]]:
        return _rows(_read(spark, cluster, table="default.ds_written"))

    first = spark.range(0, 3000, 1, 3).select("id", (F.col("id") * 2).alias("doubled"), F.col("id").cast("string").alias("label"))
    write(first, "overwrite")
    assert read_back() == _rows(first)
    write(first, "append")
    assert read_back() == sorted(_rows(first) * 2)

    second = spark.range(10, 1010, 1, 2).select("id", F.lit("x").alias("tag"))
    write(second, "overwrite")  # replaced, with the new schema
    assert read_back() == _rows(second)
    empty = second.limit(0)
    write(empty, "overwrite")
    assert read_back() == []


def test_concurrent_writes_into_one_table_on_two_nodes_each_commit_whole(spark: Any, cluster: Cluster) -> None:
    """Hadoop's committer stages every write into a table in one directory: two at once
    would clean up each other's files. Eight ingests into one table, over both nodes at
    once, then a data source write of eight partitions into it."""
    import adbc_driver_flightsql.dbapi as flightsql
    import pyarrow as pa

    def ingest(i: int) -> int:
        node = cluster.nodes[i % 2]
        rows = pa.table({"id": pa.array(range(i * 1000, (i + 1) * 1000), pa.int64()), "writer": [i] * 1000})
        with flightsql.connect(node.uri, db_kwargs={"username": USER, "password": PASSWORD}) as conn, \
                conn.cursor() as cur:
            count = cur.adbc_ingest("ds_concurrent", rows, mode="create_append")
            conn.commit()
            return count

    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(ingest, range(8)))
    assert counts == [1000] * 8
    both = [_rows(_read(spark, cluster, uri=n.uri, query="SELECT count(*), count(DISTINCT id) FROM ds_concurrent"))
            for n in cluster.nodes]
    assert both == [[(8000, 8000)]] * 2  # one table, every row of every write once

    spark.range(8000, 16000, 1, 8).selectExpr("id", "CAST(id % 8 AS INT) AS writer").write.format("flightsql") \
        .options(uri=cluster.nodes[1].uri, user=USER, password=PASSWORD, table="default.ds_concurrent") \
        .mode("append").save()
    assert _rows(_read(spark, cluster, query="SELECT count(*), count(DISTINCT id), max(id) FROM ds_concurrent")) == [
        (16000, 16000, 15999)]


def test_server_errors_reach_the_spark_user(spark: Any, cluster: Cluster) -> None:
    bad_sql = _error(lambda: _read(spark, cluster, query="SELEC id FROM range(3)"))
    assert "INVALID_ARGUMENT" in bad_sql and "PARSE_SYNTAX_ERROR" in bad_sql, bad_sql

    missing = _error(lambda: _read(spark, cluster, table="default.no_such_table"))
    assert "NOT_FOUND" in missing and "TABLE_OR_VIEW_NOT_FOUND" in missing, missing

    at_runtime = _error(lambda: _read(
        spark, cluster, query="SELECT assert_true(id < 25000, 'id went past the end') AS ok FROM range(0, 30000, 1, 4)"
    ).collect())
    assert "id went past the end" in at_runtime, at_runtime[-3000:]


def test_an_unreachable_server_is_named(spark: Any, cluster: Cluster) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    started = time.monotonic()
    message = _error(lambda: spark.read.format("flightsql").options(
        uri=f"grpc://127.0.0.1:{port}", query="SELECT 1", timeout="10").load())
    assert "UNAVAILABLE" in message and f"127.0.0.1:{port}" in message, message
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"query": "SELECT 1", "table": "default.t"}, "either the 'query' or the 'table' option, not both"),
        ({}, "give the 'query' option (a SQL query) or the 'table' option"),
        ({"query": "SELECT 1", "quary": "x"}, "unknown option(s) for a read: quary"),
    ],
)
def test_refused_option_combinations(spark: Any, cluster: Cluster, options: dict[str, str], expected: str) -> None:
    message = _error(lambda: spark.read.format("flightsql").options(uri=cluster.uri, **options).load())
    assert "FlightSqlOptionError" in message and expected in message, message


def test_a_write_names_a_table(spark: Any, cluster: Cluster) -> None:
    message = _error(lambda: spark.range(3).write.format("flightsql").options(uri=cluster.uri).mode("append").save())
    assert "a write needs the 'table' option" in message, message

