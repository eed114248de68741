"""The options of ``flightsql serve``: one table, from which the parser, the help and the
flags handed to :func:`flightsql.settings.load` all come.

The parser's defaults are left unset (``argparse.SUPPRESS``) so that a flag not given
does not hide the settings file or the environment; the help still shows each default,
with the option's settings-file key and environment variable.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightsql.settings import (
    CONFIG_ENV,
    EXECUTION_MODES,
    FILE_KEYS,
    LOG_FORMATS,
    Settings,
    env_name,
    parse_size,
)

_DEFAULTS = Settings()


def _conf(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--conf takes key=value, got {value!r}")
    return key.strip(), val


def _size(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a size: {value!r}") from exc


@dataclass(frozen=True)
class Option:
    flag: str
    name: str  # the Settings field
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    switch: bool = False  # a flag without a value, setting True

    def default_text(self) -> str:
        value = getattr(_DEFAULTS, self.name)
        if value is None:
            return "unset"
        if self.type is _size:
            return f"{value // (1 << 20)}m" if value % (1 << 30) else f"{value // (1 << 30)}g"
        return str(value)


OPTIONS: tuple[Option, ...] = (
    Option("--host", "host", "address the public Flight SQL server listens on"),
    Option("--port", "port", "port of the public Flight SQL server (0: any)", int),
    Option("--internal-port", "internal_port", "port of the internal server executors push results to (0: any)", int),
    Option("--advertise-host", "advertise_host",
           "host name clients use to reach this node (unset: --host, or the machine's name when --host is 0.0.0.0)"),
    Option("--internal-advertise-host", "internal_advertise_host",
           "host name executors use to reach the internal server (unset: loopback with a local master, "
           "else the advertised host); for networks where clients and executors see the node by "
           "different names"),
    Option("--master", "master", "Spark master URL"),
    Option("--work-dir", "work_dir", "directory for spills, staging, the warehouse and the embedded metastore", Path),
    Option("--users", "users_file", "users file (argon2 hashes, see 'flightsql users add') enabling authentication",
           Path),
    Option("--secret-file", "secret_file",
           "file with the secret signing tokens and pushes (unset: one secret kept in ZooKeeper for the cluster)",
           Path),
    Option("--allow-unauthenticated-remote", "allow_unauthenticated_remote",
           "listen on a non-loopback address without a users file", switch=True),
    Option("--memory-budget", "memory_budget", "bytes of results held in memory before spilling to disk", _size),
    Option("--disk-budget", "disk_budget",
           "bytes of spilled results on disk before queries fail with RESOURCE_EXHAUSTED", _size),
    Option("--result-ttl", "result_ttl",
           "seconds a finished result stays readable (RenewFlightEndpoint extends it)", float),
    Option("--token-ttl", "token_ttl", "seconds a bearer token is valid", int),
    Option("--zookeeper", "zookeeper",
           "ZooKeeper ensemble of the cluster to join (unset: an embedded ZooKeeper from PySpark's jars, "
           "data under WORK_DIR/zookeeper)", metavar="HOST:PORT[,HOST:PORT][/CHROOT]"),
    Option("--metastore", "metastore",
           "Hive metastore shared by the nodes (unset: an embedded Derby metastore in WORK_DIR, private to "
           "this node)", metavar="thrift://HOST:PORT"),
    Option("--execution-mode", "execution_mode",
           "auto: like distributed, but results of plans that read no table (SELECT 1, VALUES) with at most "
           "10,000 rows come from the driver (without a Spark task where they fold into constants); "
           "single: every partition goes to the node the client asked, one endpoint; "
           "distributed: partitions spread over all live nodes, one endpoint per node. "
           "Sessions may override it with the session option execution_mode", choices=EXECUTION_MODES),
    Option("--max-running", "max_running",
           "queries whose Spark jobs run at once on this node; more wait in a queue", int),
    Option("--max-running-per-user", "max_running_per_user",
           "queries of one user that run at once on this node; more of that user's wait", int),
    Option("--max-queued", "max_queued",
           "queries that may wait for a slot; beyond, new queries are refused with RESOURCE_EXHAUSTED "
           "(the server is busy, try again later)", int),
    Option("--queue-wait", "queue_wait",
           "seconds a query may wait for a slot before it fails with RESOURCE_EXHAUSTED", float),
    Option("--session-idle-timeout", "session_idle_timeout",
           "seconds a client session may go unused before it ends on every node (its settings, catalog, "
           "schema and temporary views are gone; the client's next call starts a new one)", float),
    Option("--history-size", "history_size",
           "queries the cluster's history keeps after their results expire (status page, /api/status); "
           "the oldest go first", int),
    Option("--history-age", "history_age", "seconds the history keeps a query", float),
    Option("--result-cache-ttl", "result_cache_ttl",
           "seconds a repeated small query's answer is kept (auto mode; dropped at once when a table it read "
           "is written through the cluster; this bounds how stale it is after writes from elsewhere); 0: off",
           float),
    Option("--result-cache-size", "result_cache_size", "bytes of kept answers a node holds", _size),
    Option("--max-message-size", "max_message_size",
           "largest message a client may send to the public server (an uploaded batch, a statement); a larger "
           "one is refused with RESOURCE_EXHAUSTED as it arrives, before authentication", _size),
    Option("--max-streams", "max_streams",
           "result streams (DoGet) and uploads (DoPut) open at once on this node; more are refused with "
           "RESOURCE_EXHAUSTED (the server keeps threads for short calls besides)", int),
    Option("--max-streams-per-user", "max_streams_per_user",
           "streams and uploads one user may have open at once on this node", int),
    Option("--stream-stall-timeout", "stream_stall_timeout",
           "seconds a stream may wait on a client that takes no message (or an upload on one that sends "
           "none) before it is ended; the result stays readable with the same ticket", float),
    Option("--max-statement-length", "max_statement_length",
           "longest SQL statement, in characters, a client may send; a longer one is refused with "
           "INVALID_ARGUMENT before Spark parses it", int),
    Option("--max-statement-depth", "max_statement_depth",
           "deepest nesting of brackets in a statement; a deeper one is refused with INVALID_ARGUMENT before "
           "Spark parses it (Spark's parser recurses per level)", int),
    Option("--ldap-url", "ldap_url",
           "LDAP directory of the users (instead of --users): ldap://HOST[:PORT] or ldaps://HOST[:PORT]; logins "
           "bind as the user", metavar="URL"),
    Option("--ldap-user-dn", "ldap_user_dn",
           "DN pattern of a user, {user} for the (escaped) name, e.g. uid={user},ou=people,dc=example,dc=org",
           metavar="PATTERN"),
    Option("--ldap-user-base", "ldap_user_base",
           "base DN to search users under (search, then bind; instead of --ldap-user-dn)", metavar="DN"),
    Option("--ldap-user-filter", "ldap_user_filter", "filter finding a user under --ldap-user-base ({user}: the "
           "escaped name)", metavar="FILTER"),
    Option("--ldap-bind-dn", "ldap_bind_dn", "DN the node searches the directory as (unset: anonymous)",
           metavar="DN"),
    Option("--ldap-bind-password-file", "ldap_bind_password_file", "file holding the password of --ldap-bind-dn",
           Path, metavar="FILE"),
    Option("--ldap-group-base", "ldap_group_base",
           "base DN of groups: the cn of each group listing a user is one of the user's groups in the policy "
           "(unset: groups come from the policy file alone)", metavar="DN"),
    Option("--ldap-group-filter", "ldap_group_filter",
           "filter finding a user's groups ({dn}: the user's DN, {user}: the name; both escaped)",
           metavar="FILTER"),
    Option("--ldap-start-tls", "ldap_start_tls", "upgrade an ldap:// connection with StartTLS", switch=True),
    Option("--ldap-ca", "ldap_ca", "PEM CA that issued the directory's certificate (unset: the system's)", Path,
           metavar="FILE"),
    Option("--tls-cert", "tls_cert",
           "PEM certificate (chain) of this node: the public server, the internal server and the status page "
           "speak TLS only, and the node's locations are grpc+tls://", Path, metavar="FILE"),
    Option("--tls-key", "tls_key", "PEM private key of --tls-cert (keep it readable by the node alone)", Path,
           metavar="FILE"),
    Option("--tls-ca", "tls_ca",
           "PEM certificate of the CA that issued the cluster's certificates: the internal server accepts "
           "only clients with a certificate it issued (mutual TLS), and the node and its executors present "
           "--tls-cert/--tls-key (the files must be at the same paths on every Spark worker host)", Path,
           metavar="FILE"),
    Option("--demo", "demo", "create the demo.trips table (100,000 rows) at start", switch=True),
    Option("--http-port", "http_port",
           "port of the HTTP status page (/) and Prometheus metrics (/metrics); 0: any; unset: no HTTP server",
           int),
    Option("--rest-port", "rest_port",
           "port of the Livy-compatible REST API (SQL sessions and statements; docs/rest.md); 0: any; "
           "unset: none", int),
    Option("--rest-max-rows", "rest_max_rows",
           "rows of a result a REST statement's output carries (the whole result stays readable over Flight)",
           int),
    Option("--rest-batches", "rest_batches",
           "batches (spark-submit runs, POST /batches) the REST API runs at once on this node; 0 (the default): "
           "none. A batch runs code as the node's own user: with a policy, only its admins may submit one", int),
    Option("--drain-timeout", "drain_timeout",
           "on SIGTERM, seconds to drain: the node takes no new work and waits until the results it holds "
           "have been read, then stops (0: stop at once; SIGINT or a second signal always stops at once)", float),
    Option("--policy", "policy_file",
           "authorization policy file (users, groups; catalog/schema/table patterns; select, modify, create, "
           "drop, admin); unset: every user may use every table, and the log says so", Path),
    Option("--allow-server-access", "allow_server_access",
           "comma-separated features that reach the node's OS or JVM and are refused to users unless listed "
           "here, for trusted deployments: script-transform, reflection, path-sources, resources, "
           "external-locations, functions (or 'all')"),
    Option("--zookeeper-credential", "zookeeper_credential_file",
           "file holding the cluster's ZooKeeper credential ('user:password'); every znode of the cluster is "
           "readable and writable only with it (unset with --zookeeper: WORK_DIR/zookeeper.credential is "
           "created; share it with every node)", Path),
    Option("--status-open", "status_open",
           "serve the status page, /api/status and /metrics without a login (trusted networks only)",
           switch=True),
    Option("--spark-ui", "spark_ui",
           "start Spark's web UI, bound to --host (off by default: it lists every job of every user)",
           switch=True),
    Option("--log-level", "log_level", "DEBUG, INFO, WARNING or ERROR"),
    Option("--log-format", "log_format", "text: one readable line per record; json: one JSON object per line",
           choices=LOG_FORMATS),
)


def add_serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="start a node",
        description="Start a node: a Spark driver with a public Flight SQL server and an internal server. "
        "Each option can also be given in a settings file (--config) by its key, or as an environment "
        "variable; flags win over the environment, which wins over the file. In the file, any other "
        "spark.* key is a Spark setting, like --conf.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--config", type=Path, default=None, metavar="FILE",
                       help=f"settings file: 'key value' lines, spark.flight.* keys and Spark settings "
                       f"(env: {CONFIG_ENV})")
    serve.add_argument("--conf", type=_conf, action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE",
                       help="a Spark setting for the node's driver (repeatable; wins over the same key in the file)")
    for option in OPTIONS:
        where = f"default: {option.default_text()}; file: {FILE_KEYS[option.name]}; env: {env_name(option.name)}"
        kwargs: dict[str, Any] = {"dest": option.name, "default": argparse.SUPPRESS,
                                  "help": f"{option.help} ({where})"}
        if option.switch:
            kwargs["action"] = "store_const"
            kwargs["const"] = True
        else:
            kwargs.update(type=option.type, choices=option.choices, metavar=option.metavar)
        serve.add_argument(option.flag, **kwargs)


def flags_of(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gave: only flags actually present."""
    given = {option.name: getattr(args, option.name) for option in OPTIONS if hasattr(args, option.name)}
    given["conf"] = tuple(getattr(args, "conf", ()))
    return given
