"""The public Flight SQL service: RPCs matched on typed commands.

Every result (a query's, a command's output, catalog metadata) is handed to the
flightmanager and read back by a ticket with DoGet, so there is one read path.
Handlers never touch protobuf for Flight SQL messages: ``flightsql.protocol``
decodes commands and encodes results.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import pyarrow as pa

from flightmanager import metrics
from flightmanager.errors import failure
from flightmanager.flight import Flight_pb2 as pb
from flightmanager.flight.service import FlightService
from flightmanager.flight.status import known_status
from flightmanager.flight.wire import (
    decode_stream,
    parse_flight_data,
    schema_flight_data,
    schema_from_message,
    schema_to_bytes,
)
from flightmanager.log_context import query_context
from flightmanager.manager import arrow_schema
from flightmanager.query import QueryState
from flightmanager.records import Submitted
from flightmanager.spark_errors import spark_status
from flightmanager.spool import Hangup
from flightsql.auth import Authenticator, Principal
from flightsql.auth.throttle import peer_address
from flightsql.catalog import schemas
from flightsql.catalog.xdbc_types import xdbc_type_info
from flightsql.errors import InvalidArgument, NotFound, Unavailable, Unimplemented
from flightsql.protocol import codec, results
from flightsql.protocol import commands as cmd
from flightsql.security.guard import Gate
from flightsql.security.plan import Access, PlanFacts, Privilege, TableName, parameter_types
from flightsql.security.policy import Authorizer
from flightsql.server import ingest, metadata
from flightsql.server.driver_results import driver_table
from flightsql.server.prepared import PreparedStatement, PreparedStatements
from flightsql.server.result_cache import ResultCache, volatile
from flightsql.server.sessions import ClientSession, Sessions, clear_cookie, cookie_session_id, set_cookie
from flightsql.server.statements import (
    Statement,
    StatementKind,
    StatementLimits,
    affected_rows,
    classify,
    dataframe,
    is_ordered,
    parameter_rows,
    parameter_schema,
    reads_no_data,
)
from flightsql.server.streams import OpenStreams
from flightsql.server.tickets import Handles, Tickets
from flightsql.server.writes import TableWrites

if TYPE_CHECKING:
    from pathlib import Path

    from pyspark.sql import DataFrame, SparkSession

    from flightmanager.manager import SparkFlightManager
    from flightsql.catalog.sql_info import SqlInfoCatalog

log = logging.getLogger(__name__)

_H = TypeVar("_H")  # a handler in an RPC's table

#: in "auto" mode, a plan that reads no data source and yields at most this many rows
#: is answered from the driver, without a distributed job
AUTO_MAX_ROWS = 10_000
EXECUTION_MODES = ("auto", "single", "distributed")

_ACTIONS = {
    "CreatePreparedStatement": "Prepare a SQL statement; returns a handle and its schemas.",
    "ClosePreparedStatement": "Release a prepared statement.",
    "CancelFlightInfo": "Cancel the query behind a FlightInfo and free its result.",
    "RenewFlightEndpoint": "Extend the expiration time of an endpoint.",
    "SetSessionOptions": "Set catalog, schema or spark.* options for this session.",
    "GetSessionOptions": "Read this session's options.",
    "CloseSession": "Close this session.",
    "CancelQuery": "Cancel a query (deprecated form of CancelFlightInfo).",
}


@dataclass(frozen=True)
class Call:
    principal: Principal
    session: ClientSession


class FlightSqlService(FlightService):
    error_mapper = staticmethod(spark_status)

    def __init__(
        self,
        spark: SparkSession,
        manager: SparkFlightManager,
        authenticator: Authenticator,
        staging_dir: Path,
        server_version: str,
        tickets: Tickets,
        execution_mode: str = "auto",
        gate: Gate | None = None,
        authorizer: Authorizer | None = None,
        sessions: Sessions | None = None,
        handles: Handles | None = None,
        writes: TableWrites | None = None,
        results: ResultCache | None = None,
        statement_limits: StatementLimits = StatementLimits(),
        streams: OpenStreams | None = None,
    ) -> None:
        if execution_mode not in EXECUTION_MODES:
            raise ValueError(f"execution mode must be one of {EXECUTION_MODES}, got {execution_mode!r}")
        self.execution_mode = execution_mode
        self.spark = spark
        self.manager = manager
        self.authenticator = authenticator
        self.staging_dir = staging_dir
        self.server_version = server_version
        self.tickets = tickets
        #: statements past these are refused before Spark parses them
        self.statement_limits = statement_limits
        #: each user's open DoGet and DoPut streams, and the stalled ones ended
        self.streams = streams if streams is not None else OpenStreams()
        #: every statement is judged here before it is prepared or run
        self.gate = gate or Gate()
        self.authorizer = authorizer or Authorizer(None)
        self.sessions = sessions if sessions is not None else Sessions(spark)
        self.writes = writes if writes is not None else TableWrites()
        self.results = results if results is not None else ResultCache(self.writes.version, ttl=0)
        self.prepared = PreparedStatements(handles if handles is not None else Handles(secrets.token_bytes(32)))
        self._sql_info: SqlInfoCatalog | None = None
        self._sql_info_lock = threading.Lock()
        # one table per RPC: which handler answers which command
        self._listings: dict[type, Callable[[Call, Any], pa.Table]] = {
            cmd.CommandGetCatalogs: lambda call, c: metadata.catalogs(call.session.spark),
            cmd.CommandGetDbSchemas: lambda call, c: metadata.db_schemas(
                call.session.spark, c.catalog, c.db_schema_filter_pattern),
            cmd.CommandGetTables: lambda call, c: metadata.tables(
                call.session.spark, c.catalog, c.db_schema_filter_pattern, c.table_name_filter_pattern,
                c.table_types, c.include_schema),
            cmd.CommandGetTableTypes: lambda call, c: metadata.table_types(),
            cmd.CommandGetSqlInfo: lambda call, c: self.sql_info().table(c.info),
            cmd.CommandGetXdbcTypeInfo: lambda call, c: xdbc_type_info(c.data_type),
            cmd.CommandGetPrimaryKeys: self._primary_keys,
            cmd.CommandGetExportedKeys: self._foreign_keys,
            cmd.CommandGetImportedKeys: self._foreign_keys,
            cmd.CommandGetCrossReference: self._cross_reference,
        }
        self._flights: dict[type, Callable[[Call, Any], Submitted]] = {
            cmd.CommandStatementQuery: self._flight_statement,
            cmd.CommandPreparedStatementQuery: self._flight_prepared,
            cmd.CommandStatementSubstraitPlan: _substrait_plan,
            **dict.fromkeys(self._listings, self._flight_listing),
        }
        self._schemas: dict[type, Callable[[Call, Any], pa.Schema]] = {
            cmd.CommandStatementQuery: self._statement_query_schema,
            cmd.CommandPreparedStatementQuery: lambda call, c: (
                self._prepared(call, c.handle).dataset_schema or pa.schema([])),
            **dict.fromkeys(_METADATA_SCHEMAS, _listing_schema),
        }
        self._uploads: dict[type, Callable[[Call, Any, pa.Schema, Iterator[pa.RecordBatch]], bytes]] = {
            cmd.CommandStatementUpdate: self._put_update,
            cmd.CommandStatementIngest: self._put_ingest,
            cmd.CommandPreparedStatementQuery: self._put_parameters,
            cmd.CommandPreparedStatementUpdate: self._put_prepared_update,
        }
        self._actions: dict[type, Callable[[Call, Any, grpc.ServicerContext], bytes | None]] = {
            cmd.CreatePreparedStatement: self._create_prepared,
            cmd.ClosePreparedStatement: lambda call, a, context: self.prepared.remove(a.handle, call.principal.user),
            cmd.CancelFlightInfo: self._cancel,
            cmd.CancelQuery: self._cancel,
            cmd.RenewFlightEndpoint: self._renew,
            cmd.SetSessionOptions: self._set_session_options,
            cmd.GetSessionOptions: self._get_session_options,
            cmd.CloseSession: self._close_session,
            **dict.fromkeys((cmd.BeginTransaction, cmd.EndTransaction, cmd.BeginSavepoint, cmd.EndSavepoint),
                            _transactions),
        }

    # -- calls ---------------------------------------------------------------
    def _call(self, context: grpc.ServicerContext) -> Call:
        metadata = {k.lower(): v for k, v in context.invocation_metadata() if isinstance(v, str)}
        result = self.authenticator.authenticate(metadata, source=peer_address(context.peer()))
        headers = list(result.response_headers)
        cookie = cookie_session_id(metadata)
        session = self.sessions.open(result.principal.user, cookie or result.session_id)
        if cookie != session.session_id:  # first contact (or an unknown cookie): name the session
            headers.append(set_cookie(session.session_id))
        if headers:
            context.send_initial_metadata(tuple(headers))
        return Call(result.principal, session)

    def handshake(
        self, requests: Iterator[pb.HandshakeRequest], context: grpc.ServicerContext
    ) -> Iterable[pb.HandshakeResponse]:
        self._call(context)
        for _ in requests:
            break
        yield pb.HandshakeResponse()

    # -- FlightInfo ------------------------------------------------------------
    def _no_new_work(self) -> None:
        """A draining node still serves the results it holds, but takes no new work."""
        if self.manager.draining:
            raise Unavailable(
                f"node {self.manager.node.node_id} is draining: it serves results it holds but takes no new "
                "queries; connect to another node"
            )

    def get_flight_info(self, request: pb.FlightDescriptor, context: grpc.ServicerContext) -> pb.FlightInfo:
        call = self._call(context)
        self._no_new_work()
        command = codec.descriptor_command(request)
        submitted = self._flight(call, command)
        return self._flight_info(request, submitted, call.principal.user)

    def _flight(self, call: Call, command: Any) -> Submitted:
        return _handler(self._flights, command, "GetFlightInfo")(call, command)

    def _flight_statement(self, call: Call, command: cmd.CommandStatementQuery) -> Submitted:
        _no_transactions(command.transaction_id, command.name)
        with self._refusals_listed(call.principal.user, command.query):
            return self._execute(call, classify(call.session.spark, command.query, self.statement_limits), None)

    def _flight_prepared(self, call: Call, command: cmd.CommandPreparedStatementQuery) -> Submitted:
        prepared = self._prepared(call, command.handle)
        rows = prepared.parameters
        if len(rows) > 1:
            raise InvalidArgument(f"a query takes one row of parameters; {len(rows)} were bound")
        # the DataFrame analysed at prepare time serves the first execution only:
        # later ones analyse again and see the catalog as it is then
        df, prepared.analysed = (prepared.analysed, None) if not rows else (None, None)
        with self._refusals_listed(call.principal.user, prepared.statement.sql):
            return self._execute(call, prepared.statement, rows[0] if rows else None, df)

    def _flight_listing(self, call: Call, command: Any) -> Submitted:
        user = call.principal.user
        table = self._visible(user, self._listings[type(command)](call, command))
        return self.manager.publish(table.schema, table.to_batches(), owner=user, sql=command.name)

    def _visible(self, user: str, table: pa.Table) -> pa.Table:
        """Catalog listings with only what the policy lets ``user`` see (the rest is not there)."""
        if self.authorizer.policy is None or "catalog_name" not in table.column_names:
            return table
        names = [table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
                 for c in ("catalog_name", "db_schema_name", "table_name")]
        keep = [catalog is None or self.authorizer.can_see(user, catalog, schema, name)  # None: a temporary view
                for catalog, schema, name in zip(*names, strict=False)]
        return table.filter(pa.array(keep, pa.bool_()))

    def _check_table(self, call: Call, catalog: str | None, db_schema: str | None, table: str) -> None:
        """NOT_FOUND for a table that does not exist or that the caller may not see (the same answer)."""
        spark, user = call.session.spark, call.principal.user
        current = spark.catalog.currentCatalog()
        schema = db_schema or spark.catalog.currentDatabase()
        if not self.authorizer.can_see(user, catalog or current, schema, table):
            parts = [p for p in (catalog, db_schema) if p] + [table]
            raise NotFound(f"table {'.'.join(parts)} not found")
        metadata.check_table(spark, catalog, db_schema, table)

    @contextmanager
    def _refusals_listed(self, user: str, sql: str) -> Iterator[None]:
        """A statement that fails before it runs is listed too (status page), then raised."""
        try:
            yield
        except Exception as exc:
            known = known_status(exc, self.error_mapper)
            if known is not None:  # an unexpected failure is logged and reported where it surfaces
                self.manager.rejected(user, sql, failure(known.code, known.message))
            raise

    def _primary_keys(self, call: Call, command: cmd.CommandGetPrimaryKeys) -> pa.Table:
        self._check_table(call, command.catalog, command.db_schema, command.table)
        return metadata.primary_keys()

    def _foreign_keys(self, call: Call, command: cmd.CommandGetExportedKeys | cmd.CommandGetImportedKeys) -> pa.Table:
        self._check_table(call, command.catalog, command.db_schema, command.table)
        return metadata.foreign_keys()

    def _cross_reference(self, call: Call, command: cmd.CommandGetCrossReference) -> pa.Table:
        self._check_table(call, command.pk_catalog, command.pk_db_schema, command.pk_table)
        self._check_table(call, command.fk_catalog, command.fk_db_schema, command.fk_table)
        return metadata.foreign_keys()

    def sql_info(self) -> SqlInfoCatalog:
        with self._sql_info_lock:
            if self._sql_info is None:
                from flightsql.catalog.facts import engine_facts
                from flightsql.catalog.sql_info import SqlInfoCatalog

                self._sql_info = SqlInfoCatalog(engine_facts(self.spark, self.server_version))
            return self._sql_info

    def _execute(
        self, call: Call, statement: Statement, parameters: list[Any] | None, df: DataFrame | None = None
    ) -> Submitted:
        spark = call.session.spark
        user = call.principal.user
        df, facts = self._judge(spark, user, statement, parameters, df)
        if statement.kind is StatementKind.QUERY:
            mode = call.session.execution_mode(self.execution_mode)
            if mode == "auto" and reads_no_data(df):
                schema = arrow_schema(df)
                # made in the driver without a Spark task where it can be; else a small job
                small = driver_table(df, AUTO_MAX_ROWS + 1, schema)
                if small is None:
                    small = df.limit(AUTO_MAX_ROWS + 1).toArrow()
                if small.num_rows <= AUTO_MAX_ROWS:
                    return self.manager.publish(schema, small.to_batches(), owner=user, sql=statement.sql)
            kept = self._kept_answer(call, statement, df, facts) if mode == "auto" else None
            if kept is not None:
                # in the statement's own schema (Spark's toArrow labels instants UTC)
                return self.manager.publish(arrow_schema(df), kept.to_batches(), owner=user, sql=statement.sql)
            ordered = is_ordered(df)
            # An ordered result is served by one node in partition order: spread over
            # nodes, each endpoint would hold interleaved ranges.
            return self.manager.submit(
                df, owner=user, sql=statement.sql, ordered=ordered, single=mode == "single" or ordered
            )
        # A command ran in the driver just now; its output is already there.
        table = df.toArrow()
        self.sessions.record(call.session)  # USE, SET and the like change the session
        return self.manager.publish(arrow_schema(df), table.to_batches(), owner=user, sql=statement.sql)

    def _kept_answer(self, call: Call, statement: Statement, df: DataFrame, facts: PlanFacts | None) -> pa.Table | None:
        """A repeated small query's answer from the result cache, or made in the driver to be
        kept there (its second ask); None: run it as a distributed job."""
        cache = self.results
        if not cache.enabled or facts is None:
            return None
        read = [str(a.table) for a in facts.accesses if a.privilege is Privilege.SELECT]
        if not read or facts.reaches:
            return None
        execution = df._jdf.queryExecution()
        analysed = execution.analyzed()
        tree = str(analysed.treeString())
        # a view's body is not in the accesses (writes into its tables would not be seen)
        if "View (" in tree or volatile(tree) or not _catalog_tables_only(analysed) \
                or not bool(execution.optimizedPlan().deterministic()):
            return None
        state = call.session.recorded
        session = {"conf": dict(state.conf), "catalog": state.catalog, "schema": state.schema} if state else {}
        key = cache.key(statement.sql, session, int(analysed.semanticHash()))
        node = self.manager.node.node_id
        kept = cache.get(key)
        if kept is not None:
            metrics.RESULT_CACHE.labels(node, "hit").inc()
            return kept
        metrics.RESULT_CACHE.labels(node, "miss").inc()
        if not cache.should_fill(key):
            return None
        versions = cache.versions(read)  # before it runs: a write meanwhile makes the answer stale
        table = df.limit(cache.max_rows + 1).toArrow()
        if not cache.fits(table):
            cache.too_large(key)
            return None if table.num_rows > cache.max_rows else table
        cache.put(key, table, versions)
        metrics.RESULT_CACHE.labels(node, "kept").inc()
        return table

    def _judged(
        self, spark: SparkSession, user: str, statement: Statement, parameters: list[Any] | None,
        df: DataFrame | None = None,
    ) -> DataFrame:
        return self._judge(spark, user, statement, parameters, df)[0]

    def _judge(
        self, spark: SparkSession, user: str, statement: Statement, parameters: list[Any] | None,
        df: DataFrame | None = None,
    ) -> tuple[DataFrame, PlanFacts | None]:
        """The statement's DataFrame, once the gate has judged it.

        The gate analyses the statement itself, with commands left unrun, before the
        DataFrame is made: making one runs any plan that is a command once analysed
        (``INSERT OVERWRITE DIRECTORY`` parses as no command and analyses into one).  A
        DataFrame made earlier (a prepared statement's, made after its own judgement) is
        judged on its plan."""
        if df is not None:
            facts = self.gate.check(spark, user, statement.sql, statement.parameter_count,
                                    df._jdf.queryExecution().analyzed())
            return df, facts
        facts = self.gate.check(spark, user, statement.sql, statement.parameter_count)
        if statement.kind is StatementKind.QUERY:
            return dataframe(spark, statement, parameters), (facts if not parameters else None)
        with self.writes.hold(_written(facts)):  # a command runs as its DataFrame is made
            return dataframe(spark, statement, parameters), facts

    def _flight_info(self, descriptor: pb.FlightDescriptor, submitted: Submitted, user: str) -> pb.FlightInfo:
        endpoints = []
        for endpoint in submitted.endpoints:
            endpoints.append(
                pb.FlightEndpoint(
                    ticket=pb.Ticket(ticket=self.tickets.issue(endpoint.query_id, user)),
                    location=[pb.Location(uri=endpoint.node.public_uri)],
                    expiration_time=results.timestamp(endpoint.expires_at),
                )
            )
        return pb.FlightInfo(
            schema=schema_to_bytes(submitted.schema),
            flight_descriptor=descriptor,
            endpoint=endpoints,
            total_records=-1,
            total_bytes=-1,
            ordered=submitted.ordered,
        )

    def poll_flight_info(self, request: pb.FlightDescriptor, context: grpc.ServicerContext) -> pb.PollInfo:
        """A long query, polled: the first call (with a Flight SQL command) submits it like
        GetFlightInfo; the answer carries every endpoint at once (readers may start), the
        progress, and a descriptor to poll again with until the result is complete.  The
        FlightInfo's ``app_metadata`` says more as JSON: the state, the queue position while
        the query waits for a slot, Spark's tasks done of all."""
        call = self._call(context)
        user = call.principal.user
        if request.type == pb.FlightDescriptor.CMD and request.cmd.startswith(POLL_PREFIX):
            query_id = self.tickets.redeem(request.cmd[len(POLL_PREFIX):], user)
            submitted = self.manager.submitted(query_id, user)
        else:
            self._no_new_work()
            submitted = self._flight(call, codec.descriptor_command(request))
        progress = self.manager.progress(submitted.query_id, user)  # a failed query is its error
        info = self._flight_info(request, submitted, user)
        info.app_metadata = json.dumps(progress.to_dict()).encode()
        poll = pb.PollInfo(info=info, expiration_time=results.timestamp(progress.expires_at))
        if progress.fraction is not None:
            poll.progress = progress.fraction
        if not progress.done:
            again = POLL_PREFIX + self.tickets.issue(submitted.query_id, user)
            poll.flight_descriptor.CopyFrom(pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=again))
        return poll

    def get_schema(self, request: pb.FlightDescriptor, context: grpc.ServicerContext) -> pb.SchemaResult:
        call = self._call(context)
        command = codec.descriptor_command(request)
        schema = _handler(self._schemas, command, "GetSchema")(call, command)
        return pb.SchemaResult(schema=schema_to_bytes(schema))

    def _statement_query_schema(self, call: Call, command: cmd.CommandStatementQuery) -> pa.Schema:
        spark = call.session.spark
        statement = classify(spark, command.query, self.statement_limits)
        self.gate.check(spark, call.principal.user, statement.sql, statement.parameter_count)
        return self._statement_schema(spark, statement, None) or pa.schema([])

    def _prepared_schema(self, spark: SparkSession, statement: Statement) -> pa.Schema | None:
        """The result schema at prepare time; with parameter markers it may be unknown
        until values are bound (Spark types markers from their values)."""
        if not statement.parameter_count:
            return self._statement_schema(spark, statement, None)
        try:
            return self._statement_schema(spark, statement, None)
        except Exception:  # noqa: BLE001 - analysed again, with values, at execution
            return None

    def _statement_schema(
        self, spark: SparkSession, statement: Statement, parameters: list[Any] | None
    ) -> pa.Schema | None:
        if statement.kind is StatementKind.QUERY:
            return arrow_schema(dataframe(spark, statement, parameters))
        if statement.kind is StatementKind.COMMAND:
            return _command_output_schema(spark, statement.sql)
        return None

    # -- DoGet ---------------------------------------------------------------
    def do_get(self, request: pb.Ticket, context: grpc.ServicerContext) -> Iterable[bytes]:
        call = self._call(context)
        query_id = self.tickets.redeem(request.ticket, call.principal.user)
        # a result the driver holds is small and whole: its stream is short, and never refused
        counted = not self.manager.record(query_id, call.principal.user).driver
        with self.streams.open(call.principal.user, context, f"the stream of query {query_id}", counted) as stream:
            yield from self.streams.sent(stream, self._result_stream(call, query_id, context))

    def _result_stream(self, call: Call, query_id: str, context: grpc.ServicerContext) -> Iterator[bytes]:
        hangup = Hangup()  # a client that goes away frees this thread at once
        context.add_callback(hangup)
        with query_context(query_id):  # the stream's own steps carry it too (manager.stream)
            schema, batches = self.manager.stream(query_id, call.principal.user, hangup)
        yield schema_flight_data(schema)
        for batch in batches:
            yield batch.to_flight_data()

    # -- DoPut ---------------------------------------------------------------
    def do_put(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterable[pb.PutResult]:
        call = self._call(context)
        self._no_new_work()
        with self.streams.open(call.principal.user, context, "an upload") as stream:
            yield from self._upload(call, self.streams.received(stream, requests))

    def _upload(self, call: Call, requests: Iterator[bytes]) -> Iterator[pb.PutResult]:
        raw_first = next(requests, None)
        if raw_first is None:
            # e.g. the ADBC driver's bulk ingest of a stream without batches sends nothing at all
            raise InvalidArgument(
                "DoPut received no messages: an upload starts with a FlightDescriptor and its schema "
                "(to create an empty table, send the schema with one empty batch)"
            )
        first = parse_flight_data(raw_first)
        if not first.descriptor:
            raise InvalidArgument("DoPut needs a FlightDescriptor in its first message")
        command = codec.descriptor_command(first.descriptor)
        upload = _handler(self._uploads, command, "DoPut")
        schema = schema_from_message(first) if len(first.header) else pa.schema([])
        batches = decode_stream((parse_flight_data(raw) for raw in requests), schema)
        yield pb.PutResult(app_metadata=upload(call, command, schema, batches))

    def _put_update(self, call: Call, command: cmd.CommandStatementUpdate, schema: pa.Schema,
                    batches: Iterator[pa.RecordBatch]) -> bytes:
        _no_transactions(command.transaction_id, command.name)
        for _ in batches:
            pass
        count = self._update(call, classify(call.session.spark, command.query, self.statement_limits), _UNBOUND)
        return results.do_put_update_result(count)

    def _put_ingest(self, call: Call, command: cmd.CommandStatementIngest, schema: pa.Schema,
                    batches: Iterator[pa.RecordBatch]) -> bytes:
        spark = call.session.spark
        table = self._authorize_ingest(spark, call.principal.user, command)
        staged, rows = ingest.stage(_typed(batches), schema, self.staging_dir / "ingest")
        try:
            with self.writes.hold([] if table is None else [str(table)]):  # one write into a table at a time
                count = ingest.load(spark, command, staged, rows, self.staging_dir / "temporary")
        finally:
            staged.unlink(missing_ok=True)
        return results.do_put_update_result(count)

    def _put_parameters(self, call: Call, command: cmd.CommandPreparedStatementQuery, schema: pa.Schema,
                        batches: Iterator[pa.RecordBatch]) -> bytes:
        prepared = self._prepared(call, command.handle)
        # the values travel in the new handle, so that any node can run the statement
        handle = self.prepared.bind(prepared, list(batches), schema) or command.handle
        return results.do_put_prepared_statement_result(handle)

    def _put_prepared_update(self, call: Call, command: cmd.CommandPreparedStatementUpdate, schema: pa.Schema,
                             batches: Iterator[pa.RecordBatch]) -> bytes:
        prepared = self._prepared(call, command.handle)
        bound: list[Any] = parameter_rows(list(batches)) or prepared.parameters
        return results.do_put_update_result(self._update(call, prepared.statement, bound or _UNBOUND))

    def _authorize_ingest(
        self, spark: SparkSession, user: str, command: cmd.CommandStatementIngest
    ) -> TableName | None:
        """An upload into a table needs CREATE where it makes one, MODIFY where it appends, and
        DROP and CREATE where it replaces one; a session's temporary tables are its own.
        Returns the table (None: a temporary one)."""
        name = ingest.target_name(command)  # validated identifiers first
        if command.temporary:
            return None
        table = TableName(command.catalog or spark.catalog.currentCatalog(),
                          command.schema or spark.catalog.currentDatabase(), command.table)
        if self.authorizer.policy is None:
            return table
        if not spark.catalog.tableExists(name):
            needed = [Privilege.CREATE]
        elif command.if_exists == "replace":
            needed = [Privilege.DROP, Privilege.CREATE]
        else:
            needed = [Privilege.MODIFY]
        self.authorizer.check(user, [Access(p, table) for p in needed])
        return table

    def _update(self, call: Call, statement: Statement, rows: list[Any]) -> int:
        if statement.kind is StatementKind.QUERY:
            raise InvalidArgument("a query was sent as an update; execute it as a query instead")
        spark = call.session.spark
        facts = self.gate.check(spark, call.principal.user, statement.sql, statement.parameter_count)
        total = 0
        try:
            with self.writes.hold(_written(facts)):  # one write into a table at a time
                for row in rows:
                    total += affected_rows(dataframe(spark, statement, row))
        finally:
            self.sessions.record(call.session)  # USE, SET and the like change the session
        return total

    # -- DoAction --------------------------------------------------------------
    def do_action(self, request: pb.Action, context: grpc.ServicerContext) -> Iterable[pb.Result]:
        call = self._call(context)
        action = codec.decode_action(request.type, request.body)
        body = self._action(call, action, context)
        if body is not None:
            yield pb.Result(body=body)

    def _action(self, call: Call, action: Any, context: grpc.ServicerContext) -> bytes | None:
        handler = self._actions.get(type(action))
        if handler is None:
            raise Unimplemented(f"{request_name(action)} is not supported")
        return handler(call, action, context)

    def _create_prepared(self, call: Call, action: cmd.CreatePreparedStatement, context: grpc.ServicerContext) -> bytes:
        _no_transactions(action.transaction_id, "CreatePreparedStatement")
        user, spark = call.principal.user, call.session.spark
        with self._refusals_listed(user, action.query):
            statement, dataset_schema, analysed = self._prepare(call, action.query)
        _, handle = self.prepared.add(user, statement, dataset_schema, analysed)
        return results.create_prepared_statement_result(
            handle,
            schema_to_bytes(dataset_schema) if dataset_schema is not None else None,
            schema_to_bytes(parameter_schema(parameter_types(spark, statement.sql, statement.parameter_count))),
            statement.is_update,
        )

    def _cancel(self, call: Call, action: cmd.CancelFlightInfo | cmd.CancelQuery,
                context: grpc.ServicerContext) -> bytes:
        user = call.principal.user
        states = [self.manager.cancel(self.tickets.redeem(ticket, user), user) for ticket in action.tickets]
        # a result that is complete, or a query that failed, has nothing left to cancel
        status = "cancelled" if states and all(s is QueryState.CANCELLED for s in states) else "not_cancellable"
        if isinstance(action, cmd.CancelQuery):
            return results.cancel_query_result(status)
        return results.cancel_flight_info_result(status)

    def _renew(self, call: Call, action: cmd.RenewFlightEndpoint, context: grpc.ServicerContext) -> bytes:
        user = call.principal.user
        expires_at = self.manager.renew(self.tickets.redeem(action.ticket, user), user)
        return results.renewed_endpoint(action.endpoint, expires_at)

    def _set_session_options(self, call: Call, action: cmd.SetSessionOptions,
                             context: grpc.ServicerContext) -> bytes:
        errors = {}
        for name in action.options:
            if name.startswith("spark."):
                self.gate.check_setting(call.principal.user, name)
        with call.session.lock:
            for name, value in action.options.items():
                try:
                    error = call.session.set_option(name, value)
                except Exception as exc:  # noqa: BLE001 - reported per option
                    log.info("session option %s=%r refused: %s", name, value, exc)
                    error = "invalid_value"
                if error:
                    errors[name] = error
            self.sessions.record(call.session)
        return results.set_session_options_result(errors)

    def _get_session_options(self, call: Call, action: cmd.GetSessionOptions, context: grpc.ServicerContext) -> bytes:
        return results.get_session_options_result(call.session.current(self.sessions.defaults))

    def _close_session(self, call: Call, action: cmd.CloseSession, context: grpc.ServicerContext) -> bytes:
        self.sessions.close(call.session)
        context.set_trailing_metadata((clear_cookie(),))  # clients that keep cookies forget it
        return results.close_session_result("closed")

    def _prepare(self, call: Call, sql: str) -> tuple[Statement, pa.Schema | None, DataFrame | None]:
        """A statement judged and analysed for preparing: its result schema, and the analysed
        DataFrame of a query without parameters (kept for its first execution)."""
        spark, user = call.session.spark, call.principal.user
        statement = classify(spark, sql, self.statement_limits)
        if statement.kind is StatementKind.QUERY and not statement.parameter_count:
            analysed = self._judged(spark, user, statement, None)
            return statement, arrow_schema(analysed), analysed
        self.gate.check(spark, user, statement.sql, statement.parameter_count)
        return statement, self._prepared_schema(spark, statement), None

    def _prepared(self, call: Call, handle: bytes) -> PreparedStatement:
        """The prepared statement of a handle, prepared again here if it was prepared elsewhere."""
        return self.prepared.get(handle, call.principal.user, lambda sql: self._prepare(call, sql)[:2])

    def list_actions(self, request: pb.Empty, context: grpc.ServicerContext) -> Iterable[pb.ActionType]:
        self._call(context)
        for name, description in _ACTIONS.items():
            yield pb.ActionType(type=name, description=description)


def _handler(table: Mapping[type, _H], command: Any, rpc: str) -> _H:
    """The handler of ``command`` in an RPC's table; a command the RPC does not take is refused."""
    handler = table.get(type(command))
    if handler is None:
        raise InvalidArgument(f"{command.name} is not a command for {rpc}")
    return handler


def _substrait_plan(call: Call, command: cmd.CommandStatementSubstraitPlan) -> Submitted:
    raise Unimplemented("CommandStatementSubstraitPlan: Substrait plans are not supported")


def _listing_schema(call: Call, command: Any) -> pa.Schema:
    if isinstance(command, cmd.CommandGetTables) and command.include_schema:
        return schemas.TABLES_WITH_SCHEMA
    return _METADATA_SCHEMAS[type(command)]


def _transactions(call: Call, action: Any, context: grpc.ServicerContext) -> bytes:
    raise Unimplemented(f"{request_name(action)}: transactions are not supported by Spark SQL")


#: the rows of a statement run once, without parameters
_UNBOUND: list[Any] = [None]


def request_name(action: Any) -> str:
    return str(getattr(action, "action_type", None) or getattr(action, "name", type(action).__name__))


#: the descriptor a client polls a query again with: this prefix and the query's ticket
POLL_PREFIX = b"flightsql-poll:"


def _catalog_tables_only(plan: Any) -> bool:
    """Whether every relation the plan reads is a catalog table (not files named by path)."""
    leaves = plan.collectLeaves().iterator()
    while leaves.hasNext():
        leaf = leaves.next()
        name = leaf.getClass().getSimpleName()
        if name == "LogicalRelation":
            if not leaf.catalogTable().isDefined():
                return False
        elif name not in ("HiveTableRelation", "OneRowRelation", "LocalRelation"):
            return False
    return True


def _written(facts: PlanFacts) -> list[str]:
    """The tables a statement writes, creates or drops (not whole schemas)."""
    return [str(a.table) for a in facts.accesses
            if a.privilege in (Privilege.MODIFY, Privilege.CREATE, Privilege.DROP) and a.table.table != "*"]


def _no_transactions(transaction_id: bytes | None, what: str) -> None:
    if transaction_id:
        raise Unimplemented(f"{what}: transactions are not supported by Spark SQL")


def _typed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except ValueError as exc:
        raise InvalidArgument(f"uploaded stream is not valid: {exc}") from exc


def _command_output_schema(spark: SparkSession, sql: str) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType

    plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(sql)
    struct = StructType.fromJson(json.loads(plan.schema().json()))
    return to_arrow_schema(struct, timezone=spark.conf.get("spark.sql.session.timeZone"))


_METADATA_SCHEMAS = {
    cmd.CommandGetCatalogs: schemas.CATALOGS,
    cmd.CommandGetDbSchemas: schemas.DB_SCHEMAS,
    cmd.CommandGetTables: schemas.TABLES,
    cmd.CommandGetTableTypes: schemas.TABLE_TYPES,
    cmd.CommandGetSqlInfo: schemas.SQL_INFO,
    cmd.CommandGetXdbcTypeInfo: schemas.XDBC_TYPE_INFO,
    cmd.CommandGetPrimaryKeys: schemas.PRIMARY_KEYS,
    cmd.CommandGetExportedKeys: schemas.FOREIGN_KEYS,
    cmd.CommandGetImportedKeys: schemas.FOREIGN_KEYS,
    cmd.CommandGetCrossReference: schemas.FOREIGN_KEYS,
}
