"""A node: a Spark driver, the public Flight SQL server, the internal server, the manager."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightmanager import metrics
from flightmanager.flight.service import bind_server, check_free, serve
from flightmanager.internal import InternalFlightService
from flightmanager.keys import ClusterKeys
from flightmanager.manager import SparkFlightManager
from flightmanager.records import Node, SpoolSettings
from flightmanager.tls import TlsFiles, location
from flightmanager.zk import credential as zk_credential
from flightmanager.zk.credential import Credential, lock_tree
from flightmanager.zk.embedded import EmbeddedZooKeeper
from flightmanager.zk.manager import cluster_secret, zookeeper_manager
from flightmanager.zk.manager import connect as zk_connect
from flightmanager.zk.paths import Paths
from flightsql import logs
from flightsql.auth import Authenticator, TokenSigner, UsersFile, load_or_create_secret
from flightsql.auth.ldap import LdapDirectory
from flightsql.rest.batches import Batches, BatchStore
from flightsql.rest.runner import FlightCaller, StatementRunner
from flightsql.rest.server import LivyGateway, RestServer
from flightsql.rest.store import RestStore
from flightsql.security.guard import Gate, parse_allowed
from flightsql.security.plan import Feature
from flightsql.security.policy import Authorizer
from flightsql.server.result_cache import ResultCache
from flightsql.server.service import FlightSqlService
from flightsql.server.session_store import ZooKeeperSessionStore
from flightsql.server.sessions import Sessions
from flightsql.server.streams import OpenStreams
from flightsql.server.tickets import Handles, Tickets
from flightsql.server.writes import TableWrites
from flightsql.settings import Settings
from flightsql.web.server import StatusServer

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


log = logging.getLogger("flightsql.node")

VERSION = "0.1.0"


def build_spark(settings: Settings) -> SparkSession:
    # Executors' Python workers must use this interpreter (it has pyarrow and us).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if settings.spark_ui and settings.host not in ("0.0.0.0", "::", ""):
        os.environ["SPARK_LOCAL_IP"] = settings.host  # Spark's web UI binds where this says
    from pyspark.sql import SparkSession

    # Spark's JVM logs in the node's format (a --conf spark.driver.extraJavaOptions replaces this)
    jvm_logging = (settings.work_dir / "log4j2.properties").resolve()
    jvm_logging.write_text(logs.jvm_config(settings.log_format))
    derby_home = (settings.work_dir / "derby").resolve()
    java_options = f"-Dderby.system.home={derby_home} -Dlog4j2.configurationFile={jvm_logging}"
    path_sources = Feature.PATH_SOURCES in parse_allowed(settings.allow_server_access)
    builder = (
        SparkSession.builder.appName(f"flightsql-{settings.port}")
        .master(settings.master)
        .config("spark.ui.showConsoleProgress", "false")
        # Spark's UI lists every job: off unless asked for, and then on the node's own address
        .config("spark.ui.enabled", "true" if settings.spark_ui else "false")
        .config("spark.sql.warehouse.dir", str((settings.work_dir / "warehouse").resolve()))
        .config("spark.driver.extraJavaOptions", java_options)
        # A persistent catalog: tables survive a restart (embedded Derby metastore in
        # the work directory; a shared metastore is set with --conf spark.hadoop.hive.metastore.uris).
        .config("spark.sql.catalogImplementation", "hive")
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={(settings.work_dir / 'metastore_db').resolve()};create=true",
        )
        .config("spark.hadoop.hive.metastore.schema.verification", "false")
        .config("spark.hadoop.hive.metastore.uris", settings.metastore or "")
        .config("spark.hadoop.datanucleus.schema.autoCreateAll", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536")
        # a lost host's executors are noticed in seconds (Spark's defaults: 60 s and more),
        # so that queries on the survivors are not handed to them meanwhile
        .config("spark.executor.heartbeatInterval", "1s")
        .config("spark.network.timeoutInterval", "1s")
        .config("spark.network.timeout", "10s")
        # ... while requests between the driver and its executors keep Spark's patience
        .config("spark.rpc.askTimeout", "120s")
        .config("spark.rpc.lookupTimeout", "120s")
        .config("spark.sql.execution.pythonUDF.arrow.enabled", "true")
        # jobs of different users share the executors fairly (a pool per user, see the manager)
        .config("spark.scheduler.mode", "FAIR")
        # users do not query files by path (`parquet.`/some/path``) unless an operator allows it;
        # set on the context, so that a RESET in a session comes back to it
        .config("spark.sql.runSQLOnFiles", str(path_sources).lower())
    )
    for key, value in settings.conf:
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@dataclass
class FlightSqlNode:
    settings: Settings
    #: times this node's Spark driver died before and the node was started again
    restarts: int = 0

    def start(self) -> FlightSqlNode:
        """Start every part; if one fails, stop those already started (no JVM is left
        behind) and raise.  Ports are taken first: a port in use fails before anything
        else starts."""
        try:
            return self._start()
        except BaseException:
            self.stop(quiet=True)
            raise

    def _start(self) -> FlightSqlNode:
        settings = self.settings
        settings.check()
        work = settings.work_dir.resolve()
        _private_directory(work)
        holder: dict[str, SparkFlightManager] = {}
        # a local master's executors are this process's children: loopback is enough
        local = settings.master.startswith("local") and not settings.internal_advertise_host
        internal_host = "127.0.0.1" if local else "0.0.0.0"
        # a port in use fails now, before Spark or ZooKeeper start; the gRPC servers
        # themselves are made after the child processes are launched (gRPC's threads
        # and a fork in the same process do not mix)
        check_free(settings.host, settings.port)
        check_free(internal_host, settings.internal_port)
        self.spark = build_spark(settings)
        if settings.zookeeper:
            zk_string = settings.zookeeper
            self.embedded_zookeeper = None
        else:
            self.embedded_zookeeper = EmbeddedZooKeeper(work / "zookeeper").start()
            zk_string = self.embedded_zookeeper.connect_string
        # the embedded ZooKeeper was the last child process to start: gRPC may start now
        tls = settings.tls()
        stream_limits = settings.stream_limits()
        self.public_server, port = bind_server(
            settings.host, settings.port, max_message=settings.max_message_size, max_workers=stream_limits.threads,
            credentials=tls.server_credentials(client_certificates=False) if tls else None,
        )
        # with the cluster's CA, only the nodes and their executors (certificates it issued) reach it
        internal_tls = tls if tls is not None and tls.ca is not None else None
        self.internal_server, internal_port = bind_server(
            internal_host, settings.internal_port,
            credentials=internal_tls.server_credentials(client_certificates=True) if internal_tls else None,
        )
        if internal_tls is None and not local:
            log.warning("the internal server takes pushes in the clear on %s:%d: give --tls-ca (with "
                        "--tls-cert/--tls-key) for mutual TLS between executors and nodes",
                        internal_host, internal_port)
        self.zk = zk_connect(zk_string, self._zookeeper_credential(work))
        paths = Paths()
        lock_tree(self.zk, paths.root, self._zookeeper_credential(work))
        # every node of the cluster shares one secret and derives the same keys from it,
        # one per use: tokens, tickets and pushes work on any node, and none needs the secret
        secret = load_or_create_secret(settings.secret_file) if settings.secret_file else cluster_secret(self.zk, paths)
        keys = ClusterKeys.derive(secret)
        del secret
        ldap = settings.ldap()
        directory = LdapDirectory(ldap) if ldap is not None else None
        users = UsersFile(settings.users_file) if settings.users_file else directory
        if users is None:
            log.warning("authentication is off (no --users file or --ldap-url): listening on %s only", settings.host)
        authenticator = Authenticator(users, TokenSigner(keys.tokens, settings.token_ttl))
        self.authorizer = Authorizer.from_file(
            settings.policy_file, directory.groups if directory is not None and ldap and ldap.group_base else None)

        internal = InternalFlightService(
            keys.pushes,
            lambda query_id: holder["manager"].spool_of(query_id),
            lambda query_id: holder["manager"].exhausted(query_id),
            lambda query_id, rows, outcome: holder["manager"].pushed(query_id, rows, outcome),
        )
        serve(self.internal_server, internal)
        self.status_server: StatusServer | None = None
        if settings.http_port is not None:
            self.status_server = StatusServer(
                settings.host, settings.http_port, lambda: holder["manager"].status(), VERSION,
                authenticator=authenticator, is_admin=lambda user: self.authorizer.is_admin(user),
                open_to_all=settings.status_open, tls=tls,
            ).start()
            if settings.status_open and users is not None:
                log.warning("status page open to anyone who reaches %s:%s (--status-open): it shows every "
                            "user's SQL", settings.host, self.status_server.port)
        node = Node(
            node_id=f"{socket.gethostname()}:{port}",
            public_uri=location(settings.public_host, port, tls is not None),
            internal_uri=location(_internal_host(settings, internal_host), internal_port, internal_tls is not None),
            host=socket.gethostname(),
            status_uri=self.status_server.url(settings.public_host) if self.status_server else None,
        )
        logs.set_node(node.node_id)
        self.manager = zookeeper_manager(
            self.spark,
            node,
            keys.pushes,
            SpoolSettings(
                memory_budget=settings.memory_budget,
                disk_budget=settings.disk_budget,
                spill_dir=work / "spill",
                result_ttl=settings.result_ttl,
            ),
            self.zk,
            paths,
            limits=settings.limits(),
            retention=settings.retention(),
            tls=internal_tls,
        )
        holder["manager"] = self.manager
        self.manager.driver_restarts = self.restarts
        self.manager.warm_up()
        if settings.demo:
            from flightsql.demo import create_demo_tables

            create_demo_tables(self.spark)
        writes = TableWrites(self.zk, paths, holder=node.node_id)
        self.sessions = Sessions(self.spark, ZooKeeperSessionStore(self.zk, paths),
                                 settings.session_idle_timeout).start()
        self.service = FlightSqlService(
            self.spark, self.manager, authenticator, work / "staging", VERSION,
            tickets=Tickets(keys.tickets), execution_mode=settings.execution_mode,
            gate=Gate(parse_allowed(settings.allow_server_access), self.authorizer.authorize),
            authorizer=self.authorizer, sessions=self.sessions, handles=Handles(keys.handles),
            writes=writes, results=ResultCache(writes.version, ttl=settings.result_cache_ttl,
                                               budget=settings.result_cache_size),
            statement_limits=settings.statement_limits(), streams=OpenStreams(stream_limits),
        )
        serve(self.public_server, self.service)
        self.rest_server: RestServer | None = None
        if settings.rest_port is not None:
            self.rest_server = self._rest_server(settings, authenticator, node, tls, paths)
        self.port = port
        self.internal_port = internal_port
        self.node = node
        if node.status_uri:
            log.info("status page at %s (metrics at %smetrics)", node.status_uri, node.status_uri)
        log.info(
            "ready: Flight SQL at %s (internal %s, Spark %s, master %s, ZooKeeper %s, %d live nodes)",
            node.public_uri, node.internal_uri, self.spark.version, settings.master, zk_string,
            len(self.manager.membership.live()),
        )
        return self

    def _rest_server(self, settings: Settings, authenticator: Authenticator, node: Node,
                     tls: TlsFiles | None, paths: Paths) -> RestServer:
        """The Livy-compatible REST API: a Flight SQL client of this node in each user's name."""
        roots = None
        if tls is not None:
            roots = (tls.ca or tls.cert).read_bytes()
        caller = FlightCaller(node.public_uri, roots)
        batches = Batches(
            BatchStore(self.zk, paths.root), node.node_id, settings.master, settings.work_dir.resolve() / "batches",
            settings.rest_batches,
        )
        store = RestStore(self.zk, paths.root)
        gateway = LivyGateway(
            store, StatementRunner(store, caller, settings.rest_max_rows),
            authenticator, self.authorizer.is_admin, node.node_id, self.manager.membership.is_live,
            self.manager.admission.full, VERSION, batches,
            lambda user: self.authorizer.policy is None or self.authorizer.is_admin(user))
        batches.adopt()
        server = RestServer(settings.host, settings.rest_port or 0, gateway, tls).start(settings.public_host)
        log.info("Livy REST API at %s", server.url(settings.public_host))
        return server

    def _zookeeper_credential(self, work: Path) -> Credential:
        """The cluster's ZooKeeper credential: the file given, or (embedded ZooKeeper) one of
        this node's own, created at first start."""
        path = self.settings.zookeeper_credential_file
        if path is not None:
            return zk_credential.load(path)
        return zk_credential.load_or_create(work / "zookeeper.credential")  # settings.check: embedded only

    def driver_alive(self) -> bool:
        """Whether the JVM of this node's Spark driver still runs."""
        gateway = getattr(self.spark.sparkContext, "_gateway", None)
        process = getattr(gateway, "proc", None)
        return process is None or process.poll() is None

    def drain(self, timeout: float) -> bool:
        """Take no new work (new queries are UNAVAILABLE here and get no part elsewhere), and
        wait until the results this node holds have been read; see ``--drain-timeout``."""
        return self.manager.drain(timeout)

    def stop(self, quiet: bool = False, reason: str = "node stopping") -> None:
        """Stop every part that was started; a part that is already gone (the JVM signalled
        with our process group, say) does not keep the others from stopping.  ``reason``
        is what the readers of results this node held are told."""
        if not quiet:
            log.info("stopping")
        part = self.__dict__.get
        steps: list[tuple[str, Callable[[Any], object], Any]] = [
            ("REST API", lambda server: server.stop(), part("rest_server")),
            ("status page", lambda server: server.stop(), part("status_server")),
            ("results", lambda manager: manager.stop(reason), part("manager")),
            ("public server", lambda server: server.stop(grace=2).wait(), part("public_server")),
            ("stream watch", lambda service: service.streams.stop(), part("service")),
            ("sessions", lambda sessions: sessions.stop(), part("sessions")),
            ("internal server", lambda server: server.stop(grace=0).wait(), part("internal_server")),
            ("ZooKeeper client", lambda zk: (zk.stop(), zk.close()), part("zk")),
            ("embedded ZooKeeper", lambda zk: zk.stop(), part("embedded_zookeeper")),
            ("Spark", lambda spark: spark.stop(), part("spark")),
        ]
        for name, step, started in steps:
            if started is None:
                continue
            try:
                step(started)
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                log.warning("stopping %s: %s: %s", name, type(exc).__name__, exc)
        if not quiet:
            log.info("stopped")


def restart_after_driver_death(node: FlightSqlNode) -> FlightSqlNode:
    """The node's Spark driver died: fail what the node held with that reason, leave the
    cluster, and start every part again (a new Spark driver; client sessions come back
    from their records on their next call).  Returns the new node."""
    restarts = node.restarts + 1
    reason = f"the Spark driver of node {node.node.node_id} died; the node is starting again"
    log.error("%s (restart %d)", reason, restarts)
    node.stop(quiet=True, reason=reason)
    forget_spark()
    # the same ports (asked for as 0 or not): clients and the cluster know the node by them
    same_ports = replace(node.settings, port=node.port, internal_port=node.internal_port,
                         http_port=node.status_server.port if node.status_server else None,
                         rest_port=node.rest_server.port if node.rest_server else None)
    started = FlightSqlNode(same_ports, restarts).start()
    metrics.DRIVER_RESTARTS.labels(started.node.node_id).inc()
    log.info("serving again after the Spark driver died (restart %d)", restarts)
    return started


def forget_spark() -> None:
    """Forget PySpark's dead gateway and sessions, so that the next builder starts a JVM."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    SparkContext._gateway = None
    SparkContext._jvm = None
    SparkContext._active_spark_context = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None


def _private_directory(path: Path) -> None:
    """The node's work directory (results, staging, metastore, ZooKeeper data, credentials)
    is for the node's user alone: created 0700, narrowed to 0700 if it was wider."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("work directory %s was open to others (mode %o): narrowed to 700", path, mode)
        path.chmod(0o700)


def _internal_host(settings: Settings, bound: str) -> str:
    """The host executors push to: as configured, else loopback (local master) or the public name."""
    if settings.internal_advertise_host:
        return settings.internal_advertise_host
    return "127.0.0.1" if bound == "127.0.0.1" else settings.public_host


