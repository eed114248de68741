"""The ``flightsql`` command: ``serve`` a node, manage ``users``."""

from __future__ import annotations

import argparse
import errno
import getpass
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flightsql.serve_options import add_serve_parser, flags_of
from flightsql.settings import Settings, load

if TYPE_CHECKING:
    from flightsql.server.node import FlightSqlNode
    from flightsql.signals import StopSignals

_DEFAULTS = Settings()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="flightsql", description="Arrow Flight SQL on Apache Spark.")
    commands = root.add_subparsers(dest="command", required=True)

    add_serve_parser(commands)

    cluster = commands.add_parser(
        "cluster",
        help="start a local cluster",
        description="Start a local cluster from PySpark's jars: an embedded ZooKeeper, an embedded Hive "
        "metastore, with --workers a Spark standalone master and W workers, and N node processes on ports "
        "P, P+1, ... With workers, each node is an application on the master with an equal share of the "
        "workers' cores; without, each node runs Spark in local mode. Any other option is an option of "
        "'flightsql serve' and is given to every node (for example --conf, --users, --memory-budget). "
        "Ctrl-C stops everything.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    cluster.add_argument("--nodes", type=int, default=3, help="number of nodes")
    cluster.add_argument("--port", type=int, default=_DEFAULTS.port, help="port of the first node (0: any)")
    cluster.add_argument("--work-dir", type=Path, default=Path("work/cluster"), help="directory for all processes")
    cluster.add_argument("--workers", type=int, default=0,
                         help="Spark standalone workers (0: no master, each node runs Spark in local mode)")
    cluster.add_argument("--worker-cores", type=int, default=1, help="cores each worker offers")
    cluster.add_argument("--executor-memory", default="512m",
                         help="memory of each executor (one core each); a worker offers this much per core")
    cluster.add_argument("--tls", action="store_true",
                         help="TLS everywhere: certificates from a development CA in WORK_DIR/tls (clients trust "
                         "WORK_DIR/tls/ca.pem), mutual TLS between executors and nodes, and with --workers Spark's "
                         "own RPC authenticated and encrypted (spark.authenticate, spark.network.crypto.enabled)")

    users = commands.add_parser("users", help="manage the users file")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    add = users_commands.add_parser("add", help="add a user or change a password")
    add.add_argument("file", type=Path)
    add.add_argument("user")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    remove = users_commands.add_parser(
        "remove", help="remove a user (a running node refuses their logins and tokens at once)")
    remove.add_argument("file", type=Path)
    remove.add_argument("user")

    credential = commands.add_parser(
        "zookeeper-credential",
        help="create the cluster's ZooKeeper credential (give the same file to every node)",
        description="Write a new random 'user:password' for ZooKeeper's digest scheme to FILE (mode 0600). "
        "Every node started with --zookeeper-credential FILE creates the cluster's znodes so that only this "
        "credential reads or writes them.")
    credential.add_argument("file", type=Path)

    tls = commands.add_parser(
        "tls",
        help="issue development TLS certificates",
        description="Issue a certificate for a node (and its executors) from a development CA kept in DIR "
        "(DIR/ca.pem and DIR/ca-key.pem, made on first use). Writes DIR/NAME.pem and DIR/NAME-key.pem, valid "
        "for every --host given (names and addresses; default: localhost, 127.0.0.1 and this machine's names). "
        "Start a node with --tls-cert DIR/NAME.pem --tls-key DIR/NAME-key.pem --tls-ca DIR/ca.pem; clients "
        "trust DIR/ca.pem. For development and tests: production uses the organisation's CA.")
    tls.add_argument("dir", type=Path)
    tls.add_argument("--name", default="node", help="file name of the certificate")
    tls.add_argument("--host", action="append", default=[], help="a host name or address (repeatable)")

    from flightsql.client import add_query_parser

    add_query_parser(commands)
    return root


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load(flags_of(args), config=args.config)
    except ValueError as exc:
        print(f"flightsql serve: {exc}", file=sys.stderr)
        return 2
    from flightsql.logs import configure

    try:
        configure(settings.log_level, settings.log_format)
    except ValueError as exc:
        print(f"flightsql serve: {exc}", file=sys.stderr)
        return 2
    try:
        settings.check()
    except ValueError as exc:
        print(f"flightsql serve: {exc}", file=sys.stderr)
        return 2
    from flightmanager.flight.service import PortInUse
    from flightsql.server.node import FlightSqlNode, restart_after_driver_death
    from flightsql.signals import StopSignals

    signals = StopSignals()
    try:
        node = FlightSqlNode(settings).start()
    except PortInUse as exc:
        print(f"flightsql serve: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"flightsql serve: cannot listen on the status page's port {settings.http_port}: the port is in use",
              file=sys.stderr)
        return 1
    signals.install()  # again: starting Spark replaces the SIGINT handler with its own
    while (received := signals.wait(1.0)) is None:
        if not node.driver_alive():
            node = restart_after_driver_death(node)
            signals.install()
    if received == signal.SIGTERM and settings.drain_timeout > 0:
        _drain(node, signals, settings.drain_timeout)
    node.stop()
    return 0


def _drain(node: FlightSqlNode, signals: StopSignals, timeout: float) -> None:
    """Drain in the background; another signal stops the node without waiting."""
    import threading

    worker = threading.Thread(target=node.drain, args=(timeout,), name="drain", daemon=True)
    worker.start()
    while worker.is_alive():
        if signals.wait(0.2) is not None:
            logging.getLogger("flightsql.node").warning("another signal: stopping without waiting for readers")
            return


def _cluster(args: argparse.Namespace, node_args: list[str]) -> int:
    from flightsql.cluster import LocalCluster, Topology
    from flightsql.signals import StopSignals

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    topology = Topology(args.nodes, args.workers, args.worker_cores, args.executor_memory)
    try:
        cluster = LocalCluster(args.work_dir, topology, args.port, node_args, tls=args.tls)
    except ValueError as exc:
        print(f"flightsql cluster: {exc}", file=sys.stderr)
        return 2
    signals = StopSignals()
    try:
        uris = cluster.start()
    except (RuntimeError, ValueError) as exc:
        print(f"flightsql cluster: {exc}", file=sys.stderr)
        return 1
    print("cluster ready:", flush=True)
    for uri in uris:
        print(f"  {uri}", flush=True)
    if cluster.master is not None:
        print(f"Spark master {cluster.master.url}, UI {cluster.master.ui_url}", flush=True)
    if args.tls:
        print(f"clients trust {(args.work_dir / 'tls' / 'ca.pem').resolve()}", flush=True)
    signals.wait()
    cluster.stop()
    print("cluster stopped", flush=True)
    return 0


def _users(args: argparse.Namespace) -> int:
    from flightsql.auth import add_user, remove_user

    if args.users_command == "remove":
        if not remove_user(args.file, args.user):
            print(f"flightsql users remove: no user {args.user} in {args.file}", file=sys.stderr)
            return 1
        print(f"removed {args.user} from {args.file}")
        return 0
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
    if args.command == "zookeeper-credential":
        from flightmanager.zk.credential import create

        try:
            create(args.file)
        except FileExistsError:
            print(
                f"flightsql zookeeper-credential: {args.file} exists; a cluster keeps its credential", file=sys.stderr
            )
            return 1
        print(f"wrote a ZooKeeper credential to {args.file} (mode 600): give it to every node with "
              "--zookeeper-credential")
        return 0
    if args.command == "tls":
        from flightsql.certificates import default_hosts, issue

        try:
            issued = issue(args.dir, args.name, args.host or default_hosts())
        except (OSError, ValueError) as exc:
            print(f"flightsql tls: {exc}", file=sys.stderr)
            return 1
        print(f"certificate {issued.cert}, key {issued.key}, CA {issued.ca}")
        return 0
    if args.command == "query":
        from flightsql.client import run_query

        return run_query(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
