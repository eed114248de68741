"""The ``flightsql`` command: ``serve`` a node, manage ``users``."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path
from typing import Sequence

from flightsql.settings import Settings, load, parse_size

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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="flightsql", description="Arrow Flight SQL on Apache Spark.")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="start a node",
        description="Start a node: a Spark driver with a public Flight SQL server. "
        "Every option can also be set as an environment variable FLIGHTSQL_<OPTION> "
        "(for example FLIGHTSQL_PORT=31337).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--host", default=_DEFAULTS.host, help="address of the public Flight SQL server")
    serve.add_argument("--port", type=int, default=_DEFAULTS.port, help="port of the public Flight SQL server (0: any)")
    serve.add_argument("--internal-port", type=int, default=_DEFAULTS.internal_port,
                       help="port of the internal server executors push results to (0: any)")
    serve.add_argument("--advertise-host", default=None,
                       help="host name clients use to reach this node (default: --host, or the host name)")
    serve.add_argument("--master", default=_DEFAULTS.master, help="Spark master URL")
    serve.add_argument("--conf", type=_conf, action="append", default=[], metavar="KEY=VALUE",
                       help="a Spark setting (repeatable)")
    serve.add_argument("--work-dir", type=Path, default=_DEFAULTS.work_dir,
                       help="directory for spills, staging, the warehouse and the cluster secret")
    serve.add_argument("--users", dest="users_file", type=Path, default=None,
                       help="users file (argon2 hashes) enabling authentication")
    serve.add_argument("--secret-file", type=Path, default=None,
                       help="shared secret signing tokens and pushes (default: WORK_DIR/cluster.secret)")
    serve.add_argument("--allow-unauthenticated-remote", action="store_true", default=None,
                       help="listen on a non-loopback address without a users file")
    serve.add_argument("--memory-budget", type=_size, default=_DEFAULTS.memory_budget,
                       help="bytes of results held in memory before spilling to disk (e.g. 512m)")
    serve.add_argument("--disk-budget", type=_size, default=_DEFAULTS.disk_budget,
                       help="bytes of spilled results on disk before queries fail with RESOURCE_EXHAUSTED")
    serve.add_argument("--result-ttl", type=float, default=_DEFAULTS.result_ttl,
                       help="seconds a result stays readable (RenewFlightEndpoint extends it)")
    serve.add_argument("--token-ttl", type=int, default=_DEFAULTS.token_ttl, help="seconds a bearer token is valid")
    serve.add_argument("--zookeeper", default=None, metavar="HOST:PORT[,HOST:PORT][/CHROOT]",
                       help="ZooKeeper ensemble of the cluster to join (default: start an embedded "
                       "ZooKeeper from PySpark's jars, data under WORK_DIR/zookeeper)")
    serve.add_argument("--metastore", default=None, metavar="thrift://HOST:PORT",
                       help="Hive metastore shared by the nodes (default: an embedded Derby metastore "
                       "in WORK_DIR, private to this node)")
    serve.add_argument("--execution-mode", choices=("auto", "single", "distributed"), default=_DEFAULTS.execution_mode,
                       help="auto: like distributed, but results of plans that read no table (SELECT 1, VALUES) "
                       "with at most 10,000 rows come from the driver without a job; single: every partition "
                       "goes to the node the client asked, one endpoint; distributed: partitions spread over all "
                       "live nodes, one endpoint per node. Sessions may override it with the session option "
                       "execution_mode")
    serve.add_argument("--demo", action="store_true", default=None,
                       help="create the demo.trips table (100,000 rows) at start")
    serve.add_argument("--log-level", default=_DEFAULTS.log_level, help="DEBUG, INFO, WARNING or ERROR")
    serve.add_argument("--log-format", choices=("text", "json"), default=_DEFAULTS.log_format,
                       help="text: one readable line per record; json: one JSON object per line")
    serve.add_argument("--http-port", type=int, default=_DEFAULTS.http_port,
                       help="port of the HTTP status page (/) and Prometheus metrics (/metrics); 0: any; "
                       "unset: no HTTP server")

    cluster = commands.add_parser(
        "cluster",
        help="start a local cluster",
        description="Start a local cluster: an embedded ZooKeeper, an embedded Hive metastore and N "
        "node processes on ports P, P+1, ... Any other option is an option of 'flightsql serve' and "
        "is given to every node (for example --conf, --users, --memory-budget). Ctrl-C stops everything.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    cluster.add_argument("--nodes", type=int, default=3, help="number of nodes")
    cluster.add_argument("--port", type=int, default=_DEFAULTS.port, help="port of the first node (0: any)")
    cluster.add_argument("--work-dir", type=Path, default=Path("work/cluster"), help="directory for all processes")

    users = commands.add_parser("users", help="manage the users file")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    add = users_commands.add_parser("add", help="add a user or change a password")
    add.add_argument("file", type=Path)
    add.add_argument("user")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    return root


def _serve(args: argparse.Namespace) -> int:
    flags = {
        "host": args.host, "port": args.port, "internal_port": args.internal_port,
        "advertise_host": args.advertise_host, "master": args.master, "conf": tuple(args.conf),
        "work_dir": args.work_dir, "users_file": args.users_file, "secret_file": args.secret_file,
        "allow_unauthenticated_remote": args.allow_unauthenticated_remote,
        "memory_budget": args.memory_budget, "disk_budget": args.disk_budget,
        "result_ttl": args.result_ttl, "token_ttl": args.token_ttl, "demo": args.demo,
        "execution_mode": args.execution_mode, "zookeeper": args.zookeeper, "metastore": args.metastore,
        "log_level": args.log_level, "log_format": args.log_format, "http_port": args.http_port,
    }
    settings = load(flags)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings.check()
    except ValueError as exc:
        print(f"flightsql serve: {exc}", file=sys.stderr)
        return 2
    from flightsql.server.node import FlightSqlNode

    from flightsql.signals import StopSignals

    signals = StopSignals()
    node = FlightSqlNode(settings).start()
    signals.install()  # again: starting Spark replaces the SIGINT handler with its own
    signals.wait()
    node.stop()
    return 0


def _cluster(args: argparse.Namespace, node_args: list[str]) -> int:
    from flightsql.cluster import LocalCluster

    from flightsql.signals import StopSignals

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signals = StopSignals()
    cluster = LocalCluster(args.work_dir, args.nodes, args.port, node_args)
    try:
        uris = cluster.start()
    except (RuntimeError, ValueError) as exc:
        print(f"flightsql cluster: {exc}", file=sys.stderr)
        return 1
    print("cluster ready:", flush=True)
    for uri in uris:
        print(f"  {uri}", flush=True)
    signals.wait()
    cluster.stop()
    print("cluster stopped", flush=True)
    return 0


def _users(args: argparse.Namespace) -> int:
    from flightsql.auth import add_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print("flightsql users add: passwords differ", file=sys.stderr)
            return 2
    added = add_user(args.file, args.user, password)
    print(f"{'added' if added else 'updated'} {args.user} in {args.file}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = parser().parse_known_args(argv)
    if args.command == "cluster":
        return _cluster(args, extra)
    if extra:
        parser().error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "serve":
        return _serve(args)
    if args.command == "users":
        return _users(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
