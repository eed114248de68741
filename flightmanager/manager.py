"""SparkFlightManager: runs a DataFrame so that its result lands, as Arrow, on the nodes.

``submit`` starts the Spark job asynchronously and returns at once with the result's
schema and one :class:`Endpoint` per node; executors push every partition to a
node's internal Flight server; ``stream`` hands out what a node holds, as it
arrives.  No process ever collects a result: the driver only sees one summary row
per partition.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

import pyarrow as pa

from flightmanager import lifecycle, metrics
from flightmanager.admission import Admission, Limits
from flightmanager.budget import ByteBudget
from flightmanager.claims import Claim, manifests
from flightmanager.errors import FlightManagerError, NotOwner, QueryCancelled, ResultNotFound, ServerBusy, failure
from flightmanager.flight.wire import EncodedBatch
from flightmanager.history import History, MemoryHistory
from flightmanager.keys import push_mac
from flightmanager.lifecycle import ACTIVE
from flightmanager.log_context import iterate_in_query, query_context
from flightmanager.members import Members, SoloMembers
from flightmanager.peers import Keepalive, PeerWatch
from flightmanager.push import Faults, pusher
from flightmanager.query import QueryState

# the records are importable from here too, where the manager's users have always found them
from flightmanager.records import Endpoint, Node, Progress, QueryRecord, SpoolSettings, Submitted
from flightmanager.registry import MemoryRegistry, QueryInfo, Registry, changed
from flightmanager.spark_errors import describe_failure
from flightmanager.spool import Hangup, ResultSpool
from flightmanager.status import ClusterStatus, QueryStatus, Served, StreamTally, merge
from flightmanager.tls import TlsFiles

if TYPE_CHECKING:
    from pyspark.rdd import RDD
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


class SparkFlightManager:
    """Distributes DataFrame results over the nodes and streams them back by ticket.

    An adapter around :mod:`flightmanager.lifecycle`: the Spark job runner, the
    registry's watches, the cluster's members and the Flight services feed it events
    (:meth:`_feed`), and it carries out the actions the lifecycle returns.  It decides
    no transition itself.  The cluster is given to it: a :class:`Registry` for the
    queries and :class:`Members` for the nodes (ZooKeeper for a cluster, see
    :func:`flightmanager.zk.manager.zookeeper_manager`; memory for a node alone).
    """

    def __init__(
        self,
        spark: SparkSession | None,
        node: Node,
        push_key: bytes,
        settings: SpoolSettings,
        registry: Registry | None = None,
        members: Members | None = None,
        keepalive: Keepalive = Keepalive(),
        limits: Limits = Limits(),
        history: History | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.spark = spark
        #: the node's TLS files: its peers and its executors' pushes reach internal servers with them
        self.tls = tls
        self.node = node
        #: proves pushes (see flightmanager.keys): executors get a per-query MAC, never this key
        self._push_key = push_key
        self.settings = settings
        #: the cluster's queries, and the results this node holds alone (a command's output)
        self.registry: Registry = registry if registry is not None else MemoryRegistry()
        self._own = MemoryRegistry()
        #: how often this node's Spark driver died and the node started again (status page)
        self.driver_restarts = 0
        #: what queries were, after their results expired
        self.history: History = history if history is not None else MemoryHistory()
        self.memory = ByteBudget("memory", settings.memory_budget)
        self.disk = ByteBudget("spill disk", settings.disk_budget)
        self._lock = threading.Condition()
        self._records: dict[str, QueryRecord] = {}
        self._expiry: list[tuple[float, str]] = []
        self._stopping = False
        #: draining: no new work; the node leaves once what it holds has been read
        self.draining = False
        shutil.rmtree(settings.spill_dir, ignore_errors=True)
        settings.spill_dir.mkdir(parents=True, exist_ok=True)
        #: which queries run now and which wait (PENDING) for one of the job threads
        self.admission = Admission(limits, node.node_id)
        self._queued: dict[str, tuple[QueryRecord, DataFrame]] = {}
        self._jobs = ThreadPoolExecutor(limits.running + 1, thread_name_prefix="query")
        #: what the registry's watches, the members and the peer watch report is handled
        #: here, in order: their own threads (kazoo's among them) never block on it
        self._events = ThreadPoolExecutor(1, thread_name_prefix="lifecycle-events")
        #: what this node served is recorded off the streaming path, in order, one write at a time
        self._served_writer = ThreadPoolExecutor(1, thread_name_prefix="served-writer")
        self._reaper = threading.Thread(target=self._reap, name="result-expiry", daemon=True)
        self._reaper.start()
        # a node that dies or stops answering is suspected in seconds, not at session expiry
        self.peers = PeerWatch(node.node_id, keepalive, self._suspected, tls)
        self.membership: Members = (members if members is not None else SoloMembers(node)).start(
            self._left, self.peers.update
        )
        label = node.node_id
        metrics.MEMORY_HELD.labels(label).set_function(lambda: self.memory.used)
        metrics.DISK_HELD.labels(label).set_function(lambda: self.disk.used)
        metrics.MEMORY_BUDGET.labels(label).set(settings.memory_budget)
        metrics.DISK_BUDGET.labels(label).set(settings.disk_budget)
        metrics.QUERIES_RUNNING.labels(label).set_function(self._running)
        metrics.QUERIES_WAITING.labels(label).set_function(lambda: self.admission.waiting)
        metrics.LIVE_NODES.labels(label).set_function(lambda: len(self.membership.live()))

    def _running(self) -> int:
        me = self.node.node_id
        return sum(
            1 for r in list(self._records.values())
            if r.coordinator == me and r.state in ACTIVE and not r.internal
        )

    def exhausted(self, query_id: str) -> None:
        """A budget ran out while holding this query: stop its job."""
        self._cancel_job(query_id)

    # -- the lifecycle ---------------------------------------------------------------
    def _feed(self, record: QueryRecord, event: lifecycle.Event) -> lifecycle.Life:
        """Hand ``event`` to the lifecycle and carry out what it decides."""
        with self._lock:
            result = lifecycle.step(record.life, event)
            record.life = result.life
            spool = record.spool
            if any(isinstance(a, lifecycle.CloseSpool) for a in result.actions):
                record.spool = None
            self._lock.notify_all()
        failure: FlightManagerError | None = None
        with query_context(record.query_id):
            for action in result.actions:
                try:
                    self._carry_out(record, spool, action)
                except Exception as exc:  # noqa: BLE001 - the other actions still happen
                    log.warning("query %s: %s failed: %s", record.query_id, type(action).__name__, exc)
                    if isinstance(action, (lifecycle.WriteManifests, lifecycle.RecordEnd)):
                        failure = FlightManagerError(
                            f"query {record.query_id} failed: the cluster's registry could not be written ({exc})"
                        )
        if failure is not None:
            return self._feed(record, lifecycle.RecordingFailed(failure, time.time()))
        return result.life

    def _carry_out(self, record: QueryRecord, spool: ResultSpool | None, action: lifecycle.Action) -> None:
        query_id = record.query_id
        if isinstance(action, lifecycle.CancelJob):
            self._cancel_job(query_id)
        elif isinstance(action, lifecycle.LeaveQueue):
            with self._lock:
                self._queued.pop(query_id, None)
                admitted = self._admitted(self.admission.withdraw(query_id))
            self._start(admitted)
        elif isinstance(action, lifecycle.FinishSpool):
            if spool is not None:
                spool.finish(action.manifest)
        elif isinstance(action, lifecycle.FailSpool):
            if spool is not None:
                spool.fail(action.error)
        elif isinstance(action, lifecycle.CloseSpool):
            if spool is not None:
                spool.close(action.reason)
        elif isinstance(action, lifecycle.WriteManifests):
            for node_id, manifest in action.manifests.items():
                record.registry.write_manifest(query_id, node_id, dict(manifest))
        elif isinstance(action, lifecycle.RecordEnd):
            record.registry.update(query_id, lambda info: _ended(info, action))
        elif isinstance(action, lifecycle.RecordExpiry):
            record.registry.update(
                query_id, lambda info: changed(info, expires_at=max(info.expires_at, action.expires_at))
            )
        elif isinstance(action, lifecycle.DeleteRecord):
            if not record.internal:
                self._remember(record)
            record.registry.delete(query_id)
        elif isinstance(action, lifecycle.ScheduleExpiry):
            with self._lock:
                heapq.heappush(self._expiry, (action.at, query_id))
                self._lock.notify_all()
        elif isinstance(action, lifecycle.CountEnd):
            if not record.internal:
                metrics.QUERIES_ENDED.labels(self.node.node_id, action.outcome.value).inc()
                metrics.QUERY_SECONDS.labels(self.node.node_id).observe(action.seconds_from_start)
        elif isinstance(action, lifecycle.Log) and (not record.internal or action.level >= logging.WARNING):
            log.log(action.level, "%s", action.message)

    def _cancel_job(self, query_id: str) -> None:
        if self.spark is not None:
            self.spark.sparkContext.cancelJobGroup(query_id)

    def _watch(self, record: QueryRecord) -> None:
        """Follow the query's record in its registry (another node may end it)."""

        def changed_(info: QueryInfo | None) -> bool:
            # the registry's thread (kazoo's): hand over, never block; stop once nothing can change
            try:
                self._events.submit(self._record_changed, record, info)
            except RuntimeError:  # the node is stopping: nothing is left to follow
                return False
            return info is not None and not QueryState(info.state).terminal

        record.registry.watch(record.query_id, changed_)

    def _record_changed(self, record: QueryRecord, info: QueryInfo | None) -> None:
        """What the registry says, as events (on the events thread)."""
        with query_context(record.query_id):
            if info is None:
                self._feed(record, lifecycle.Expire("expired"))
                return
            if info.expires_at > record.expires_at:
                self._feed(record, lifecycle.ExtendedElsewhere(info.expires_at))
            state = QueryState(info.state)
            if state is QueryState.FINISHED and not record.life.coordinating and record.state in ACTIVE:
                manifest = record.registry.manifest(record.query_id, self.node.node_id) or {}
                self._feed(record, lifecycle.ManifestWritten(manifest, info.finished))
            elif state in (QueryState.FAILED, QueryState.CANCELLED):
                self._feed(record, lifecycle.EndedElsewhere(state, _error(info), info.finished or time.time()))

    # -- the registry ----------------------------------------------------------------
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
        return sorted(self._records.values(), key=lambda r: r.created, reverse=True)

    def status(self) -> ClusterStatus:
        """Live nodes, and running and recent queries as this node sees the cluster."""
        now = time.time()
        me = self.node.node_id
        local = [self._with_progress(record.status(me), record)
                 for record in list(self._records.values()) if not record.internal]
        queries = merge(self._registry_status(), local, me, self.settings.history,
                        self.history.recent(self.settings.history))
        nodes = tuple(replace(n.status(), draining=self._is_draining(n.node_id)) for n in self._live_nodes())
        me_now = replace(self.node.status(), draining=self.draining, driver_restarts=self.driver_restarts)
        return ClusterStatus(me_now, now, nodes, queries)

    def _with_progress(self, status: QueryStatus, record: QueryRecord) -> QueryStatus:
        if not status.running or not record.life.coordinating:
            return status
        try:
            return replace(status, progress=self._progress(record).to_dict())
        except Exception:  # noqa: BLE001 - ended meanwhile: listed without progress
            return status

    def _remember(self, record: QueryRecord) -> None:
        """Keep what a query was in the history, before its record goes."""
        found = record.registry.snapshot([record.query_id]).get(record.query_id)
        mine = record.status(self.node.node_id)
        if found is None:
            final = mine
        else:
            info, served = found
            final = QueryStatus(info.query_id, info.owner, info.sql, info.state, info.coordinator, info.created,
                                info.finished, info.error, {**served, **mine.served})
        final = replace(final, state=QueryState.EXPIRED.value, outcome=final.outcome or final.state)
        try:
            self.history.add(final)
        except Exception as exc:  # noqa: BLE001 - the history is a record, not the result
            log.warning("query %s could not be added to the history: %s: %s", record.query_id, type(exc).__name__, exc)

    def _registry_status(self) -> list[QueryStatus]:
        return [
            QueryStatus(
                info.query_id, info.owner, info.sql, info.state, info.coordinator, info.created,
                info.finished, info.error, served,
            )
            for info, served in self.registry.snapshot().values()
        ]

    def _is_draining(self, node_id: str) -> bool:
        return (self.draining and node_id == self.node.node_id) or self.membership.is_draining(node_id)

    def _live_nodes(self) -> list[Node]:
        suspected = self.peers.suspected()
        return [n for n in self.membership.live() if n.node_id not in suspected]

    def _targets_now(self) -> list[Node]:
        """Nodes that take new work: live, not draining, not suspected."""
        suspected = self.peers.suspected()
        return [n for n in self.membership.targets() if n.node_id not in suspected]

    def pushed(self, query_id: str, rows: int, outcome: str) -> None:
        """An executor's push of a partition ended: committed, dropped as a duplicate, or
        incomplete (the attempt failed midway)."""
        record = self._records.get(query_id)
        if record is not None and record.internal:
            return
        label = self.node.node_id
        metrics.PARTITIONS_PUSHED.labels(label, outcome).inc()
        if outcome == "committed":
            metrics.ROWS_RECEIVED.labels(label).inc(rows)

    def _register(
        self, owner: str, sql: str, schema: pa.Schema, ordered: bool, *, local: bool = False, single: bool = False,
        internal: bool = False,
    ) -> QueryRecord:
        """A new query coordinated here; ``local``: held by this node alone, unknown to the others."""
        query_id = uuid.uuid4().hex
        now = time.time()
        me = self.node.node_id
        # new work goes to nodes that are not draining (this one is not: it took the query)
        nodes = (self.node,) if local or single else tuple(self._targets_now()) or (self.node,)
        life = lifecycle.Life(
            query_id, me, me, frozenset(n.node_id for n in nodes), self.settings.result_ttl, now,
            now + self.settings.result_ttl, counted=internal,
        )
        registry = self._own if local else self.registry
        record = QueryRecord(
            life, owner, sql, schema, ordered, registry, nodes=nodes, single=single, internal=internal,
            driver=local and not internal,
        )
        with query_context(query_id):
            registry.create(
                QueryInfo(
                    query_id, owner, me, QueryInfo.clip_sql(sql), QueryInfo.encode_schema(schema), ordered, now,
                    life.expires_at, state=QueryState.PENDING.value, nodes=sorted(life.nodes),
                )
            )
            self._adopt(record)
            self._watch(record)
            if not internal:
                metrics.QUERIES_STARTED.labels(me, "driver" if local else "job").inc()
                log.info("%s from %s: %s", "driver result" if local else "query", owner, _one_line(sql))
        return record

    def _lookup(self, query_id: str) -> QueryRecord | None:
        """A query another node coordinates: mirror it and hold its part here."""
        info = self.registry.get(query_id)
        if info is None:
            return None
        if info.nodes is not None and self.node.node_id not in info.nodes:
            return None  # no part of the result is here: "not found", never an empty result
        holders = set(info.nodes or ())
        life = lifecycle.Life(
            query_id, self.node.node_id, info.coordinator, frozenset(holders), self.settings.result_ttl,
            info.created, info.expires_at, state=QueryState.RUNNING,
        )
        record = QueryRecord(
            life, info.owner, info.sql, info.arrow_schema(), info.ordered, self.registry,
            nodes=tuple(n for n in self.membership.live() if n.node_id in holders),
        )
        adopted = self._adopt(record)
        if adopted is record:
            self._watch(record)
        return adopted

    def _adopt(self, record: QueryRecord) -> QueryRecord:
        """Hold a spool for ``record`` on this node and schedule its expiry."""
        query_id = record.query_id
        record.spool = ResultSpool(
            query_id,
            record.schema,
            memory=self.memory,
            disk=self.disk,
            spill_dir=self.settings.spill_dir / query_id,
            claim=self._claimer(record),
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

    def _claimer(self, record: QueryRecord) -> Callable[[int, int, int, str, int, bool], bool]:
        node_id = self.node.node_id

        def claim(key: int, attempt: int, rows: int, push: str, first: int, last: bool) -> bool:
            won = record.registry.claim(record.query_id, Claim(key, node_id, attempt, rows, push, first, last))
            if won:
                self._feed(record, lifecycle.ClaimWon(key, node_id))
            return won

        return claim

    # -- running -------------------------------------------------------------
    def submit(
        self, df: DataFrame, *, owner: str, sql: str, ordered: bool, single: bool = False
    ) -> Submitted:
        """Run ``df``; ``single`` keeps the whole result on this node (one endpoint)."""
        return self._submit(df, owner=owner, sql=sql, ordered=ordered, single=single)

    def _submit(
        self, df: DataFrame, *, owner: str, sql: str, ordered: bool, single: bool = False, internal: bool = False
    ) -> Submitted:
        schema = arrow_schema(df)
        if not internal:
            with self._lock:
                if self.admission.full():  # refused before anything is registered
                    metrics.QUERIES_REFUSED.labels(self.node.node_id, "queue_full").inc()
                    raise self.admission.busy(
                        f"{self.admission.running} queries are running and {self.admission.waiting} are waiting"
                    )
        # an internal query stays on this node, unknown to the registry and the other nodes
        record = self._register(owner, sql, schema, ordered, single=single, internal=internal, local=internal)
        if internal:  # the node's own warm-up takes no user's slot
            self._jobs.submit(self._run, record, df)
        else:
            self._admit(record, df)
        return Submitted(record.query_id, schema, self._endpoints(record), ordered)

    def _admit(self, record: QueryRecord, df: DataFrame) -> None:
        """Run the query now, or queue it (PENDING) for a slot; refuse it if the queue is full."""
        refused: ServerBusy | None = None
        with self._lock:
            try:
                run_now = self.admission.offer(record.query_id, record.owner, time.time())
            except ServerBusy as exc:
                refused, run_now = exc, False
            else:
                if not run_now:
                    self._queued[record.query_id] = (record, df)
                    self._lock.notify_all()  # the reaper watches the wait limit
        if refused is not None:
            metrics.QUERIES_REFUSED.labels(self.node.node_id, "queue_full").inc()
            # the status page lists it, failed with the reason; its result is freed at once
            self._feed(record, lifecycle.WaitedTooLong(refused, time.time()))
            self._feed(record, lifecycle.Expire("refused: the server is busy"))
            raise refused
        if run_now:
            self._start([(record, df)])
        else:
            log.info("query %s waits for a slot (%d running, %d waiting)", record.query_id,
                     self.admission.running, self.admission.waiting)

    def _admitted(self, query_ids: list[str]) -> list[tuple[QueryRecord, DataFrame]]:
        """The queued jobs of ``query_ids``, taken off the queue (the caller holds the lock)."""
        return [self._queued.pop(q) for q in query_ids if q in self._queued]

    def _start(self, jobs: list[tuple[QueryRecord, DataFrame]]) -> None:
        for record, df in jobs:
            try:
                self._jobs.submit(self._run, record, df)
            except RuntimeError:  # stopping
                return

    def _release_slot(self, record: QueryRecord) -> None:
        with self._lock:
            admitted = self._admitted(self.admission.release(record.owner))
        self._start(admitted)

    def _endpoints(self, record: QueryRecord) -> tuple[Endpoint, ...]:
        return tuple(Endpoint(node, record.query_id, record.expires_at) for node in record.nodes)

    def _run(self, record: QueryRecord, df: DataFrame) -> None:
        try:
            with query_context(record.query_id):
                if self._feed(record, lifecycle.Started()).state is not QueryState.RUNNING:
                    return  # cancelled, closed or failed while it waited for its slot
                self._run_job(record, df)
        finally:
            if not record.internal:
                self._release_slot(record)

    def _run_job(self, record: QueryRecord, df: DataFrame) -> None:
        assert self.spark is not None
        sc = self.spark.sparkContext
        query_id = record.query_id
        # named by the query id alone: Spark's UI and logs show no user's name or SQL
        sc.setJobGroup(query_id, f"flightsql query {query_id}", interruptOnCancel=True)
        # each user's jobs share one pool of Spark's FAIR scheduler: a huge query of one
        # user gets no more of the executors than the small ones of another
        sc.setLocalProperty("spark.scheduler.pool", scheduler_pool(record.owner))
        try:
            targets = [n.push_target() for n in record.nodes]
            batches = arrow_batches(df)
            partitions = batches.getNumPartitions()
            # every attempt of a deterministic stage yields the same batches: its partitions
            # are pushed in pieces, served as they come (an ordered result waits for each whole)
            pieces = not record.ordered and deterministic(df, batches)
            push = pusher(
                query_id, targets, push_mac(self._push_key, query_id), record.schema, pieces=pieces,
                faults=Faults.of(df.sparkSession.conf.get), tls=self.tls,
            )
            batches.mapPartitions(push).foreach(lambda summary: None)
            # what each node serves comes from the claims: which push of each partition won where
            made = manifests(query_id, record.registry.won(query_id), partitions, [t.node_id for t in targets])
            self._feed(record, lifecycle.JobSucceeded(made, time.time()))
        except Exception as exc:  # noqa: BLE001 - any failure ends the query
            spool = record.spool
            # the node's own verdict (a budget ran out) names the cause better than Spark's
            error = spool.error if spool is not None and spool.error is not None else describe_failure(exc, query_id)
            self._feed(record, lifecycle.JobFailed(error, time.time()))
        finally:
            # None removes a local property (PySpark's annotation says str)
            sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
            sc.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]

    def warm_up(self) -> None:
        """Run one tiny push job (to this node alone) so the first user query does not pay
        for starting Python workers."""
        assert self.spark is not None
        sc = self.spark.sparkContext
        df = self.spark.range(0, 1, 1, max(1, sc.defaultParallelism))
        submitted = self._submit(df, owner="node", sql="-- warm-up", ordered=False, internal=True)
        _, batches = self.stream(submitted.query_id, "node")
        for _ in batches:
            pass
        self._feed(self.record(submitted.query_id), lifecycle.Expire("closed"))
        with self._lock:  # the node's own business: no status page lists it
            self._records.pop(submitted.query_id, None)

    def publish(
        self, schema: pa.Schema, batches: Iterable[pa.RecordBatch], *, owner: str, sql: str
    ) -> Submitted:
        """Serve a result the driver already holds (a command's output, metadata): this
        node alone serves it, from one endpoint."""
        record = self._register(owner, sql, schema, True, local=True)
        spool = record.spool
        assert spool is not None
        self._feed(record, lifecycle.Started())
        writer = spool.begin(0, 0)
        try:
            for batch in batches:
                if batch.schema != schema:
                    batch = pa.RecordBatch.from_arrays(batch.columns, schema=schema)
                writer.append(EncodedBatch.from_record_batch(batch))
        except BaseException as exc:
            writer.abort()
            self._feed(record, lifecycle.JobFailed(describe_failure(exc, record.query_id), time.time()))
            raise
        writer.commit()
        self._feed(record, lifecycle.JobSucceeded({self.node.node_id: {0: writer.rows}}, time.time()))
        return Submitted(record.query_id, schema, self._endpoints(record), True)

    # -- reading and lifecycle -------------------------------------------------
    def stream(
        self, query_id: str, user: str, hangup: Hangup | None = None
    ) -> tuple[pa.Schema, Iterator[EncodedBatch]]:
        """What this node holds of the result, as it arrives; ``hangup``: the client went."""
        record = self.record(query_id, user)
        spool = record.spool
        if record.state is QueryState.EXPIRED or spool is None:
            raise ResultNotFound(f"result {query_id} expired")
        if record.error is not None:
            raise record.error
        return record.schema, iterate_in_query(query_id, self._counted(record, spool.batches(hangup)))

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
            if measured:
                log.info(
                    "query %s: node %s served %d rows, %d bytes%s", record.query_id, node, tally.rows, tally.bytes,
                    "" if complete else " (stream ended early)",
                )
            with self._lock:
                record.open_streams -= 1
                record.delivered = record.delivered or complete
                self._lock.notify_all()
            self._served(record)

    def _served(self, record: QueryRecord) -> None:
        """A stream of ``record`` ended here: record the figures for every node's status page."""
        if record.internal:
            return
        with contextlib.suppress(RuntimeError):  # stopping: the record goes with the query anyway
            self._served_writer.submit(self._write_served, record)

    def _write_served(self, record: QueryRecord) -> None:
        with query_context(record.query_id):
            try:
                record.registry.write_served(record.query_id, self.node.node_id, Served.of(record.tallies))
            except Exception as exc:  # noqa: BLE001 - the status page misses a figure, no more
                log.warning("could not record what node %s served: %s", self.node.node_id, exc)

    def submitted(self, query_id: str, user: str) -> Submitted:
        """The query as it was submitted: its schema and endpoints (for a client that polls)."""
        record = self.record(query_id, user)
        if record.state is QueryState.EXPIRED:
            raise ResultNotFound(f"result {query_id} expired")
        return Submitted(query_id, record.schema, self._endpoints(record), record.ordered)

    def progress(self, query_id: str, user: str) -> Progress:
        """How far ``query_id`` has come; raises its error if it failed or was cancelled."""
        return self._progress(self.record(query_id, user))

    def _progress(self, record: QueryRecord) -> Progress:
        query_id, state = record.query_id, record.state
        if state is QueryState.EXPIRED:
            raise ResultNotFound(f"result {query_id} expired")
        if record.error is not None:
            raise record.error
        if state is QueryState.FINISHED:
            return Progress(state, 1.0, True, record.expires_at)
        if state is QueryState.PENDING:
            with self._lock:
                position = self.admission.position(query_id)
            return Progress(state, 0.0, False, record.expires_at, queue_position=position)
        if not record.life.coordinating or self.spark is None:
            return Progress(state, None, False, record.expires_at)  # Spark's figures are the coordinator's
        done, total = self._tasks(query_id)
        # never 1 before the result is whole: the last pushes and the manifests come after the tasks
        fraction = min(done / total, 0.99) if total else 0.0
        return Progress(state, fraction, False, record.expires_at, tasks_done=done, tasks_total=total)

    def _tasks(self, query_id: str) -> tuple[int, int]:
        """Tasks done and tasks in all of the query's Spark jobs so far, from Spark's status tracker."""
        assert self.spark is not None
        tracker = self.spark.sparkContext.statusTracker()
        done = total = 0
        for job_id in tracker.getJobIdsForGroup(query_id):
            job = tracker.getJobInfo(job_id)
            if job is None:
                continue
            for stage_id in job.stageIds:
                stage = tracker.getStageInfo(stage_id)
                if stage is not None:
                    done += stage.numCompletedTasks
                    total += stage.numTasks
        return done, total

    def cancel(self, query_id: str, user: str) -> QueryState:
        record = self.record(query_id, user)
        return self._feed(record, lifecycle.CancelRequested(user, time.time())).state

    def renew(self, query_id: str, user: str) -> float:
        record = self.record(query_id, user)
        if record.state is QueryState.EXPIRED:
            raise ResultNotFound(f"result {query_id} expired")
        return self._feed(record, lifecycle.Renewed(time.time() + self.settings.result_ttl)).expires_at

    def close(self, query_id: str, user: str) -> None:
        record = self.record(query_id, user)
        if record.state in ACTIVE:
            self._feed(record, lifecycle.CancelRequested(user, time.time()))
        self._feed(record, lifecycle.Expire("closed"))

    def _reap(self) -> None:
        """Tell the lifecycle when a result's time comes (a timed wait, not a polling loop)."""
        with self._lock:
            while not self._stopping:
                now = time.time()
                waited = [self._queued.pop(q)[0] for q in self.admission.overdue(now) if q in self._queued]
                due: list[QueryRecord] = []
                while self._expiry and self._expiry[0][0] <= now:
                    at, query_id = heapq.heappop(self._expiry)
                    record = self._records.get(query_id)
                    if record is not None and record.state is not QueryState.EXPIRED and at >= record.expires_at:
                        due.append(record)
                self._lock.release()
                try:
                    for record in waited:
                        metrics.QUERIES_REFUSED.labels(self.node.node_id, "waited").inc()
                        with query_context(record.query_id):
                            error = self.admission.busy(
                                f"query {record.query_id} waited {self.admission.limits.wait:.0f} s for a slot"
                            )
                            self._feed(record, lifecycle.WaitedTooLong(error, now))
                    for record in due:
                        with query_context(record.query_id):
                            self._feed(record, lifecycle.TimeUp(now))
                finally:
                    self._lock.acquire()
                self._forget_old()
                wakes = [at for at in (self._expiry[0][0] if self._expiry else None,
                                       self.admission.next_deadline()) if at is not None]
                if not due and not waited:
                    self._lock.wait(min(wakes) - time.time() if wakes else None)

    def rejected(self, owner: str, sql: str, error: FlightManagerError) -> None:
        """A statement refused before anything ran (bad SQL, no such table): no result, but
        the status page lists it, with the error, like any query that failed."""
        now = time.time()
        me = self.node.node_id
        life = lifecycle.Life(
            uuid.uuid4().hex, me, me, frozenset(), self.settings.result_ttl, now, now + self.settings.result_ttl,
            state=QueryState.FAILED, error=error, finished_at=now, counted=True,
        )
        record = QueryRecord(life, owner, QueryInfo.clip_sql(sql), pa.schema([]), False, self._own)
        with self._lock:
            self._records[record.query_id] = record
            heapq.heappush(self._expiry, (record.expires_at, record.query_id))
            self._lock.notify_all()

    # -- other nodes ---------------------------------------------------------------
    def _left(self, node_id: str) -> None:
        """A node left the cluster without draining (the members' thread: hand over)."""
        self._hand_over(self._departed, lifecycle.NodeLeft(node_id, time.time()))

    def _suspected(self, node: Node) -> None:
        """A node stopped answering on its channel (the peer watch's thread: hand over)."""
        self._hand_over(self._departed, lifecycle.NodeSuspected(node.node_id, node.host, time.time()))

    def _hand_over(self, handle: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the node is stopping
            self._events.submit(handle, *args)

    def _departed(self, event: lifecycle.NodeLeft | lifecycle.NodeSuspected) -> None:
        for record in list(self._records.values()):
            if record.life.depends_on(event.node_id):
                with query_context(record.query_id):
                    self._feed(record, event)

    # -- draining ------------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Take no new work, then wait (at most ``timeout`` seconds) until every result this
        node holds has been read in full once, or has expired, failed or been closed.

        Returns True when nothing is left.  Otherwise what is left fails, with a message,
        on every node: no reader waits for a part that will not come."""
        self.draining = True
        self.membership.drain()
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
            record = self._records.get(query_id) or self._lookup(query_id)
            if record is not None:
                with query_context(query_id):
                    self._feed(record, lifecycle.DrainTimedOut(time.time()))
        return False

    def _undelivered(self) -> set[str]:
        """Queries a reader would still need this node for."""
        with self._lock:
            now = time.time()
            left = {r.query_id for r in self._records.values() if r.needed(now)}
        live = (QueryState.PENDING.value, QueryState.RUNNING.value, QueryState.FINISHED.value)
        for query_id, (info, _served) in self.registry.snapshot().items():
            # a query with a part here that no push or read has brought to this node yet
            if info.nodes and self.node.node_id in info.nodes and info.state in live and query_id not in self._records:
                left.add(query_id)
        return left

    def _forget_old(self) -> None:
        expired = [r for r in self._records.values() if r.state is QueryState.EXPIRED]
        for record in sorted(expired, key=lambda r: r.created)[: max(0, len(expired) - self.settings.history)]:
            del self._records[record.query_id]

    def stop(self, reason: str = "node stopping") -> None:
        self.membership.stop()
        self.peers.stop()
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._served_writer.shutdown(wait=False, cancel_futures=True)
        self._jobs.shutdown(wait=False, cancel_futures=True)
        for record in list(self._records.values()):
            self._feed(record, lifecycle.Expire(f"closed: {reason}"))
        self._events.shutdown(wait=False, cancel_futures=True)


def _ended(info: QueryInfo, end: lifecycle.RecordEnd) -> QueryInfo | None:
    """The registry's record with the query's end, unless it has ended there already."""
    if QueryState(info.state).terminal:
        return None
    error = end.error
    return changed(
        info, state=end.state.value, finished=end.finished_at, expires_at=max(info.expires_at, end.expires_at),
        error=None if error is None else error.message, error_code=None if error is None else error.code.name,
    )


def _error(info: QueryInfo) -> FlightManagerError:
    """The error a registry record carries, as the exception a reader gets."""
    if info.state == QueryState.CANCELLED.value:
        return QueryCancelled(info.error or f"query {info.query_id} was cancelled")
    return failure(info.error_code, info.error or f"query {info.query_id} failed")


def _one_line(sql: str, limit: int = 2000) -> str:
    """SQL text for a log line: whitespace runs collapsed, long text cut."""
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def arrow_schema(df: DataFrame) -> pa.Schema:
    """The Arrow schema Spark's Arrow path produces for ``df`` (session time zone)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    conf = df.sparkSession.conf
    timezone = conf.get("spark.sql.session.timeZone")
    large = (conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") or "false").lower() == "true"
    return to_arrow_schema(df.schema, timezone=timezone, prefers_large_types=large)


def arrow_batches(df: DataFrame) -> RDD[bytes]:
    """The DataFrame's partitions as Arrow IPC record batch messages, made in the JVM.

    Spark's own Arrow writer (what ``toArrow()`` uses) produces them on the executors;
    Python tasks receive the bytes as they are."""
    from pyspark.rdd import RDD
    from pyspark.serializers import NoOpSerializer

    jrdd = df._jdf.toArrowBatchRdd().toJavaRDD()
    return RDD(jrdd, df.sparkSession.sparkContext, NoOpSerializer())


def deterministic(df: DataFrame, batches: RDD[bytes]) -> bool:
    """Whether every attempt of a task of ``batches`` (the RDD of ``df``'s Arrow batches)
    yields the same rows in the same order: Spark's DETERMINATE output level, and no
    expression Spark knows to be nondeterministic in the plan."""
    try:
        level = str(batches._jrdd.rdd().outputDeterministicLevel().toString())
        return level == "DETERMINATE" and bool(df._jdf.queryExecution().optimizedPlan().deterministic())
    except Exception:  # noqa: BLE001 - a Spark without the level: assume the worst
        return False


def scheduler_pool(user: str) -> str:
    """The FAIR scheduler pool of ``user``'s jobs, named without the user's name."""
    import hashlib

    return "pool-" + hashlib.sha256(user.encode()).hexdigest()[:12]
