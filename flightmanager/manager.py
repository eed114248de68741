"""SparkFlightManager: runs a DataFrame so that its result lands, as Arrow, on the nodes.

``submit`` starts the Spark job asynchronously and returns at once with the result's
schema and one :class:`Endpoint` per node; executors push every partition to a
node's internal Flight server; ``stream`` hands out what a node holds, as it
arrives.  No process ever collects a result: the driver only sees one summary row
per partition.
"""

from __future__ import annotations

import abc
import heapq
import logging
import shutil
import threading
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import pyarrow as pa

from flightmanager import metrics
from flightmanager.budget import ByteBudget
from flightmanager.claims import Claim, ClaimBook, MemoryClaims, manifests
from flightmanager.errors import (
    FlightManagerError,
    NodeLost,
    NotOwner,
    QueryCancelled,
    ResultNotFound,
)
from flightmanager.flight.wire import EncodedBatch
from flightmanager.keys import push_mac
from flightmanager.log_context import iterate_in_query, query_context
from flightmanager.push import FAIL_AFTER_COMMIT, pusher
from flightmanager.query import QueryState
from flightmanager.spool import Hangup, ResultSpool
from flightmanager.spark_failures import describe_failure
# the records are importable from here too, where the manager's users have always found them
from flightmanager.records import Endpoint, Node, QueryRecord, SpoolSettings, Submitted  # noqa: F401
from flightmanager.status import ClusterStatus, QueryStatus, StreamTally, merge

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


class SparkFlightManager(abc.ABC):
    """Distributes DataFrame results over the nodes and streams them back by ticket."""

    #: the node this manager runs on; a draining node takes no new work
    node: Node
    draining: bool = False

    @abc.abstractmethod
    def rejected(self, owner: str, sql: str, error: FlightManagerError) -> None:
        """List a statement that failed before it ran (status pages show it)."""

    @abc.abstractmethod
    def drain(self, timeout: float) -> bool:
        """Take no new work; wait until what this node holds has been read (True) or time runs out."""

    @abc.abstractmethod
    def submit(
        self, df: "DataFrame", *, owner: str, sql: str, ordered: bool, single: bool = False
    ) -> Submitted:
        """Run ``df``; ``single`` keeps the whole result on this node (one endpoint)."""

    @abc.abstractmethod
    def publish(
        self, schema: pa.Schema, batches: Iterable[pa.RecordBatch], *, owner: str, sql: str
    ) -> Submitted: ...

    @abc.abstractmethod
    def stream(
        self, query_id: str, user: str, hangup: Hangup | None = None
    ) -> tuple[pa.Schema, Iterator[EncodedBatch]]:
        """What this node holds of the result, as it arrives; ``hangup``: the client went."""

    @abc.abstractmethod
    def cancel(self, query_id: str, user: str) -> QueryState: ...

    @abc.abstractmethod
    def renew(self, query_id: str, user: str) -> float: ...

    @abc.abstractmethod
    def close(self, query_id: str, user: str) -> None: ...

    @abc.abstractmethod
    def queries(self) -> list[QueryRecord]: ...

    @abc.abstractmethod
    def status(self) -> ClusterStatus:
        """Live nodes, and running and recent queries, as this node sees the cluster."""

    @abc.abstractmethod
    def stop(self) -> None: ...


class LocalFlightManager(SparkFlightManager):
    """One node: executors push every partition to this node's internal server."""

    def __init__(self, spark: "SparkSession", node: Node, push_key: bytes, settings: SpoolSettings) -> None:
        self.spark = spark
        self.node = node
        #: proves pushes (see flightmanager.keys): executors get a per-query MAC, never this key
        self._push_key = push_key
        self.settings = settings
        self.memory = ByteBudget("memory", settings.memory_budget)
        self.disk = ByteBudget("spill disk", settings.disk_budget)
        self._lock = threading.Condition()
        self._records: dict[str, QueryRecord] = {}
        self._expiry: list[tuple[float, str]] = []
        #: claims of the results this node holds alone (a cluster's are in its registry)
        self._own_claims = MemoryClaims()
        self._stopping = False
        #: draining: no new work; the node leaves once what it holds has been read
        self.draining = False
        shutil.rmtree(settings.spill_dir, ignore_errors=True)
        settings.spill_dir.mkdir(parents=True, exist_ok=True)
        self._reaper = threading.Thread(target=self._reap, name="result-expiry", daemon=True)
        self._reaper.start()
        label = node.node_id
        metrics.MEMORY_HELD.labels(label).set_function(lambda: self.memory.used)
        metrics.DISK_HELD.labels(label).set_function(lambda: self.disk.used)
        metrics.MEMORY_BUDGET.labels(label).set(settings.memory_budget)
        metrics.DISK_BUDGET.labels(label).set(settings.disk_budget)
        metrics.QUERIES_RUNNING.labels(label).set_function(self._running)

    def _running(self) -> int:
        me = self.node.node_id
        return sum(
            1 for r in list(self._records.values())
            if r.coordinator == me and r.state in (QueryState.PENDING, QueryState.RUNNING) and not r.internal
        )

    def exhausted(self, query_id: str) -> None:
        """A budget ran out while holding this query: stop its job."""
        self.spark.sparkContext.cancelJobGroup(query_id)

    # -- registry ------------------------------------------------------------
    def spool_of(self, query_id: str) -> ResultSpool | None:
        record = self._records.get(query_id) or self._lookup(query_id)
        return None if record is None else record.spool

    def record(self, query_id: str, user: str | None = None) -> QueryRecord:
        record = self._records.get(query_id) or self._lookup(query_id)
        if record is None:
            raise ResultNotFound(f"no result {query_id} on this node (unknown, or expired)")
        if user is not None and record.owner != user:
            raise NotOwner(f"result {query_id} belongs to another user")
        return record

    def queries(self) -> list[QueryRecord]:
        return sorted(list(self._records.values()), key=lambda r: r.created, reverse=True)

    def status(self) -> ClusterStatus:
        """Live nodes, and running and recent queries as this node sees the cluster."""
        now = time.time()
        me = self.node.node_id
        local = [record.status(me) for record in list(self._records.values()) if not record.internal]
        queries = merge(self._registry_status(), local, me, self.settings.history)
        nodes = tuple(replace(n.status(), draining=self._is_draining(n.node_id)) for n in self._live_nodes())
        return ClusterStatus(replace(self.node.status(), draining=self.draining), now, nodes, queries)

    def _is_draining(self, node_id: str) -> bool:
        return self.draining and node_id == self.node.node_id

    def pushed(self, query_id: str, rows: int, committed: bool) -> None:
        """An executor's push of a partition ended (committed, or dropped as a duplicate)."""
        record = self._records.get(query_id)
        if record is not None and record.internal:
            return
        label = self.node.node_id
        metrics.PARTITIONS_PUSHED.labels(label, "committed" if committed else "dropped").inc()
        if committed:
            metrics.ROWS_RECEIVED.labels(label).inc(rows)

    def _register(
        self, owner: str, sql: str, schema: pa.Schema, ordered: bool, *, local: bool = False, single: bool = False,
        internal: bool = False,
    ) -> QueryRecord:
        query_id = uuid.uuid4().hex
        now = time.time()
        record = QueryRecord(
            query_id, owner, sql, schema, ordered, now, now + self.settings.result_ttl,
            coordinator=self.node.node_id, nodes=(self.node,), single=single, internal=internal,
        )
        with query_context(query_id):
            self._adopt(record, local=local)
            self._published(record, local=local)
            if not internal:
                metrics.QUERIES_STARTED.labels(self.node.node_id, "driver" if local else "job").inc()
            log.info("%s from %s: %s", "driver result" if local else "query", owner, _one_line(sql))
        return record

    def _adopt(self, record: QueryRecord, *, local: bool = False) -> QueryRecord:
        """Hold a spool for ``record`` on this node and schedule its expiry."""
        query_id = record.query_id
        record.spool = ResultSpool(
            query_id,
            record.schema,
            memory=self.memory,
            disk=self.disk,
            spill_dir=self.settings.spill_dir / query_id,
            claim=self._claimer(query_id, self._claim_book(local)),
            ordered=record.ordered,
        )
        with self._lock:
            existing = self._records.get(query_id)
            if existing is not None:
                return existing
            self._records[query_id] = record
            heapq.heappush(self._expiry, (record.expires_at, query_id))
            self._lock.notify_all()
        return record

    def _claimer(self, query_id: str, book: ClaimBook) -> Callable[[int, int, int, str], bool]:
        node_id = self.node.node_id
        return lambda partition, attempt, rows, push: book.claim(
            query_id, Claim(partition, node_id, attempt, rows, push)
        )

    # -- hooks a distributed manager overrides --------------------------------
    def _claim_book(self, local: bool) -> ClaimBook:
        """Where the claims of a result are decided (``local``: held by this node alone)."""
        return self._own_claims

    def _won(self, record: QueryRecord) -> dict[int, Claim]:
        return self._own_claims.won(record.query_id)

    def _targets(self, record: QueryRecord) -> list[Node]:
        return list(record.nodes) or [self.node]

    def _endpoints(self, record: QueryRecord) -> tuple[Endpoint, ...]:
        return tuple(Endpoint(node, record.query_id, record.expires_at) for node in self._targets(record))

    def _lookup(self, query_id: str) -> QueryRecord | None:
        """A query this node has not seen (another node coordinates it)."""
        return None

    def _registry_status(self) -> list[QueryStatus]:
        """Queries as the cluster's registry knows them (none: one node)."""
        return []

    def _live_nodes(self) -> list[Node]:
        return [self.node]

    def _served(self, record: QueryRecord) -> None:
        """A stream of ``record`` ended on this node."""

    def _published(self, record: QueryRecord, *, local: bool) -> None:
        """The query was registered here (the coordinator)."""

    def _finished(self, record: QueryRecord, manifests: dict[str, dict[int, int]]) -> None:
        """The job succeeded; ``manifests`` maps node id to {partition: rows}."""
        assert record.spool is not None
        record.spool.finish(manifests.get(self.node.node_id, {}))

    def _failed(self, record: QueryRecord, error: FlightManagerError) -> None:
        if record.spool is not None:
            record.spool.fail(error)

    # -- running -------------------------------------------------------------
    def submit(
        self, df: "DataFrame", *, owner: str, sql: str, ordered: bool, single: bool = False
    ) -> Submitted:
        return self._submit(df, owner=owner, sql=sql, ordered=ordered, single=single)

    def _submit(
        self, df: "DataFrame", *, owner: str, sql: str, ordered: bool, single: bool = False, internal: bool = False
    ) -> Submitted:
        schema = arrow_schema(df)
        # an internal query stays on this node, unknown to the registry and the other nodes
        record = self._register(owner, sql, schema, ordered, single=single, internal=internal, local=internal)
        thread = threading.Thread(
            target=self._run, args=(record, df), name=f"query-{record.query_id[:8]}", daemon=True
        )
        record.move(QueryState.RUNNING)
        thread.start()
        return Submitted(record.query_id, schema, self._endpoints(record), ordered)

    def _run(self, record: QueryRecord, df: "DataFrame") -> None:
        with query_context(record.query_id):
            self._run_job(record, df)

    def _run_job(self, record: QueryRecord, df: "DataFrame") -> None:
        sc = self.spark.sparkContext
        query_id = record.query_id
        # named by the query id alone: Spark's UI and logs show no user's name or SQL
        sc.setJobGroup(query_id, f"flightsql query {query_id}", interruptOnCancel=True)
        spool = record.spool
        assert spool is not None
        try:
            targets = [n.push_target() for n in self._targets(record)]
            fail_after_commit = (df.sparkSession.conf.get(FAIL_AFTER_COMMIT, "false") or "").lower() == "true"
            push = pusher(query_id, targets, push_mac(self._push_key, query_id), record.schema, fail_after_commit)
            batches = arrow_batches(df)
            partitions = batches.getNumPartitions()
            batches.mapPartitions(push).foreach(lambda summary: None)
            # what each node serves comes from the claims: which push of each partition won where
            made = manifests(query_id, self._won(record), partitions, [t.node_id for t in targets])
            with self._lock:
                finished = record.state is QueryState.RUNNING
                if finished:
                    record.move(QueryState.FINISHED)
                    record.finished_at = time.time()
                    # readable for one TTL from completion, at least as long as advertised
                    record.expires_at = max(record.expires_at, record.finished_at + self.settings.result_ttl)
                    heapq.heappush(self._expiry, (record.expires_at, query_id))
                    self._lock.notify_all()
            self._finished(record, made)
            if finished:
                self._ended(record, QueryState.FINISHED)
            per_node = {node: sum(m.values()) for node, m in made.items()}
            log.info(
                "query %s finished: %d partitions, %d rows; rows per node %s",
                query_id, partitions, sum(per_node.values()), per_node,
            )
        except Exception as exc:  # noqa: BLE001 - any failure ends the query
            self._fail(record, exc)
        finally:
            sc.setLocalProperty("spark.jobGroup.id", None)

    def warm_up(self) -> None:
        """Run one tiny push job (to this node alone) so the first user query does not pay
        for starting Python workers."""
        sc = self.spark.sparkContext
        df = self.spark.range(0, 1, 1, max(1, sc.defaultParallelism))
        submitted = self._submit(df, owner="node", sql="-- warm-up", ordered=False, internal=True)
        _, batches = self.stream(submitted.query_id, "node")
        for _ in batches:
            pass
        self._expire(self.record(submitted.query_id), "closed")
        with self._lock:  # the node's own business: no status page lists it
            self._records.pop(submitted.query_id, None)

    def _fail(self, record: QueryRecord, exc: BaseException) -> None:
        with self._lock:
            outcome = QueryState.FAILED
            if record.state is QueryState.CANCELLED:
                error: FlightManagerError = QueryCancelled(f"query {record.query_id} was cancelled")
                outcome = QueryState.CANCELLED
            else:
                if record.spool is not None and record.spool.error is not None:
                    error = record.spool.error  # the node's own verdict (a budget) names the cause
                else:
                    error = describe_failure(exc, record.query_id)
                if record.state.can_move_to(QueryState.FAILED):
                    record.move(QueryState.FAILED)
            record.error = error
            if record.finished_at is None:
                record.finished_at = time.time()
        self._failed(record, error)
        self._ended(record, outcome)
        message = error.message
        log.warning("%s", message if record.query_id in message else f"query {record.query_id} failed: {message}")

    def _ended(self, record: QueryRecord, outcome: QueryState) -> None:
        """The query this node coordinates finished, failed or was cancelled: count it once."""
        with self._lock:
            if record.counted or record.coordinator != self.node.node_id or record.internal:
                return
            record.counted = True
            if record.finished_at is None:
                record.finished_at = time.time()
            seconds = record.finished_at - record.created
        label = self.node.node_id
        metrics.QUERIES_ENDED.labels(label, outcome.value).inc()
        metrics.QUERY_SECONDS.labels(label).observe(seconds)

    def publish(
        self, schema: pa.Schema, batches: Iterable[pa.RecordBatch], *, owner: str, sql: str
    ) -> Submitted:
        """Serve a result the driver already holds (a command's output, metadata)."""
        record = self._register(owner, sql, schema, True, local=True)
        spool = record.spool
        assert spool is not None
        writer = spool.begin(0, 0)
        try:
            for batch in batches:
                if batch.schema != schema:
                    batch = pa.RecordBatch.from_arrays(batch.columns, schema=schema)
                writer.append(EncodedBatch.from_record_batch(batch))
        except BaseException:
            writer.abort()
            raise
        writer.commit()
        spool.finish({0: writer.rows})
        record.move(QueryState.RUNNING)
        record.move(QueryState.FINISHED)
        record.finished_at = time.time()
        self._ended(record, QueryState.FINISHED)
        # A result the driver holds is served by this node alone.
        return Submitted(record.query_id, schema, (Endpoint(self.node, record.query_id, record.expires_at),), True)

    # -- reading and lifecycle -------------------------------------------------
    def stream(
        self, query_id: str, user: str, hangup: Hangup | None = None
    ) -> tuple[pa.Schema, Iterator[EncodedBatch]]:
        record = self.record(query_id, user)
        if record.state is QueryState.EXPIRED or record.spool is None:
            raise ResultNotFound(f"result {query_id} expired")
        if record.error is not None:
            raise record.error
        return record.schema, iterate_in_query(query_id, self._counted(record, record.spool.batches(hangup)))

    def _counted(self, record: QueryRecord, batches: Iterator[EncodedBatch]) -> Iterator[EncodedBatch]:
        """Count what this node serves (metrics, the query's tallies, one log line per stream)."""
        node = self.node.node_id
        rows_served, bytes_served = metrics.ROWS_SERVED.labels(node), metrics.BYTES_SERVED.labels(node)
        measured = not record.internal
        tally = StreamTally()
        with self._lock:
            record.tallies.append(tally)
            record.open_streams += 1
        complete = False
        try:
            for batch in batches:
                tally.rows += batch.rows
                tally.bytes += batch.nbytes
                if measured:
                    rows_served.inc(batch.rows)
                    bytes_served.inc(batch.nbytes)
                yield batch
            complete = True
        finally:
            log.info(
                "query %s: node %s served %d rows, %d bytes%s", record.query_id, node, tally.rows, tally.bytes,
                "" if complete else " (stream ended early)",
            )
            with self._lock:
                record.open_streams -= 1
                record.delivered = record.delivered or complete
                self._lock.notify_all()
            self._served(record)

    def cancel(self, query_id: str, user: str) -> QueryState:
        record = self.record(query_id, user)
        with self._lock:
            if record.state in (QueryState.PENDING, QueryState.RUNNING):
                record.move(QueryState.CANCELLED)
                record.error = QueryCancelled(f"query {query_id} was cancelled")
                record.finished_at = time.time()
            else:
                return record.state
        with query_context(query_id):
            self.spark.sparkContext.cancelJobGroup(query_id)
            assert record.error is not None
            self._failed(record, record.error)
            self._ended(record, QueryState.CANCELLED)
            log.info("query %s cancelled by %s", query_id, user)
        return record.state

    def renew(self, query_id: str, user: str) -> float:
        record = self.record(query_id, user)
        if record.state is QueryState.EXPIRED:
            raise ResultNotFound(f"result {query_id} expired")
        with self._lock:
            record.expires_at = time.time() + self.settings.result_ttl
            heapq.heappush(self._expiry, (record.expires_at, query_id))
            self._lock.notify_all()
        return record.expires_at

    def close(self, query_id: str, user: str) -> None:
        record = self.record(query_id, user)
        if record.state in (QueryState.PENDING, QueryState.RUNNING):
            self.cancel(query_id, user)
        self._expire(record, "closed")

    def _expire(self, record: QueryRecord, reason: str) -> None:
        with query_context(record.query_id):
            with self._lock:
                if record.state is QueryState.EXPIRED:
                    return
                if record.state in (QueryState.PENDING, QueryState.RUNNING):
                    self.spark.sparkContext.cancelJobGroup(record.query_id)
                record.outcome, record.state = record.state, QueryState.EXPIRED
                spool, record.spool = record.spool, None
                self._own_claims.forget(record.query_id)
            if spool is not None:
                spool.close(reason)
            log.info("query %s result %s; spool freed", record.query_id, reason)

    def _reap(self) -> None:
        """Expire results when their time comes (a timed wait, not a polling loop)."""
        with self._lock:
            while not self._stopping:
                now = time.time()
                while self._expiry and self._expiry[0][0] <= now:
                    _, query_id = heapq.heappop(self._expiry)
                    record = self._records.get(query_id)
                    if record is not None and record.state in (QueryState.PENDING, QueryState.RUNNING):
                        # a result's lifetime starts when it is complete: look again one TTL on
                        record.expires_at = max(record.expires_at, now + self.settings.result_ttl)
                        heapq.heappush(self._expiry, (record.expires_at, query_id))
                        continue
                    if record is not None and record.expires_at <= now:
                        self._lock.release()
                        try:
                            self._expire(record, "expired")
                        finally:
                            self._lock.acquire()
                self._forget_old()
                timeout = self._expiry[0][0] - time.time() if self._expiry else None
                self._lock.wait(timeout)

    def rejected(self, owner: str, sql: str, error: FlightManagerError) -> None:
        """A statement refused before anything ran (bad SQL, no such table): no result, but
        the status page lists it, with the error, like any query that failed."""
        now = time.time()
        record = QueryRecord(
            uuid.uuid4().hex, owner, sql, pa.schema([]), False, now, now + self.settings.result_ttl,
            state=QueryState.FAILED, error=error, finished_at=now, coordinator=self.node.node_id, counted=True,
        )
        with self._lock:
            self._records[record.query_id] = record
            heapq.heappush(self._expiry, (record.expires_at, record.query_id))
            self._lock.notify_all()

    # -- draining ------------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Take no new work, then wait (at most ``timeout`` seconds) until every result this
        node holds has been read in full once, or has expired, failed or been closed.

        Returns True when nothing is left.  Otherwise what is left fails, with a message,
        on every node: no reader waits for a part that will not come."""
        self.draining = True
        self._drain_started()
        log.info("draining: no new work; waiting up to %.0fs for the results held here to be read", timeout)
        deadline = time.monotonic() + timeout
        while True:
            left = self._undelivered()
            remaining = deadline - time.monotonic()
            if not left or remaining <= 0:
                break
            with self._lock:  # streams ending notify; other changes are seen within a second
                self._lock.wait(min(remaining, 1.0))
        if not left:
            log.info("drained: every result held here was read")
            return True
        log.warning("drain timed out; %d results not read in full fail: %s", len(left), ", ".join(sorted(left)))
        for query_id in sorted(left):
            with query_context(query_id):
                self._abandon(query_id)
        return False

    def _undelivered(self) -> set[str]:
        """Queries a reader would still need this node for."""
        with self._lock:
            return {r.query_id for r in self._records.values() if r.needed()}

    def _drain_started(self) -> None:
        """Tell the cluster this node takes no new work (nothing to tell: one node)."""

    def _abandon(self, query_id: str) -> None:
        """The drain ran out of time with ``query_id`` not read: fail it."""
        error = NodeLost(f"query {query_id} failed: node {self.node.node_id} was stopped before its part was read")
        record = self._records.get(query_id)
        if record is not None:
            self._fail_with(record, error)
        else:
            self._failed_unheld(query_id, error)

    def _fail_with(self, record: QueryRecord, error: FlightManagerError) -> None:
        """End ``record`` as FAILED with ``error``: its job stops, its readers get the error."""
        if record.coordinator == self.node.node_id and record.state in (QueryState.PENDING, QueryState.RUNNING):
            self.spark.sparkContext.cancelJobGroup(record.query_id)
        with self._lock:
            record.state, record.error = QueryState.FAILED, error
            record.finished_at = record.finished_at or time.time()
        self._failed(record, error)

    def _failed_unheld(self, query_id: str, error: FlightManagerError) -> None:
        """Fail a query this node has no record of yet (nothing to tell: one node)."""

    def _forget_old(self) -> None:
        expired = [r for r in self._records.values() if r.state is QueryState.EXPIRED]
        for record in sorted(expired, key=lambda r: r.created)[: max(0, len(expired) - self.settings.history)]:
            del self._records[record.query_id]

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for record in list(self._records.values()):
            self._expire(record, "closed: node stopping")


def _one_line(sql: str, limit: int = 2000) -> str:
    """SQL text for a log line: whitespace runs collapsed, long text cut."""
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def arrow_schema(df: "DataFrame") -> pa.Schema:
    """The Arrow schema Spark's Arrow path produces for ``df`` (session time zone)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    conf = df.sparkSession.conf
    timezone = conf.get("spark.sql.session.timeZone")
    large = (conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") or "false").lower() == "true"
    return to_arrow_schema(df.schema, timezone=timezone, prefers_large_types=large)


def arrow_batches(df: "DataFrame"):  # type: ignore[no-untyped-def]
    """The DataFrame's partitions as Arrow IPC record batch messages, made in the JVM.

    Spark's own Arrow writer (what ``toArrow()`` uses) produces them on the executors;
    Python tasks receive the bytes as they are."""
    from pyspark.rdd import RDD
    from pyspark.serializers import NoOpSerializer

    jrdd = df._jdf.toArrowBatchRdd().toJavaRDD()
    return RDD(jrdd, df.sparkSession.sparkContext, NoOpSerializer())

