"""The ``flightsql query`` options: the argparse parser and the frozen settings it yields.

Everything that can be refused without a server is refused here, before any
network call: an unknown output extension, a password with no source, TLS
options for a plain-text URI, a header without ``=``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from flightsql.client.errors import UsageError

DEFAULT_URI = "grpc://127.0.0.1:31337"
ENV_URI = "FLIGHTSQL_URI"
ENV_PASSWORD = "FLIGHTSQL_PASSWORD"  # noqa: S105 - a name, not a secret
ENV_TOKEN = "FLIGHTSQL_TOKEN"  # noqa: S105 - a name, not a secret
SCHEMES = ("grpc", "grpc+tcp", "grpc+tls")
PROGRESS_MODES = ("auto", "always", "never")

# Output file extension -> format written.
OUTPUT_FORMATS: Mapping[str, str] = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".arrow": "arrow-file",
    ".feather": "arrow-file",
    ".arrows": "arrow-stream",
}


@dataclass(frozen=True)
class QueryOptions:
    """Everything one ``flightsql query`` run needs, checked and loaded once."""

    uri: str
    sql: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    tls_root_certs: bytes | None = field(default=None, repr=False)
    tls_skip_verify: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None
    output: Path | None = None
    output_format: str | None = None
    max_rows: int = 100
    progress: str = "auto"
    parallel: int = 8
    quiet: bool = False

    @property
    def tls(self) -> bool:
        return self.uri.startswith("grpc+tls://")


def _header(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--header takes KEY=VALUE, got {value!r}")
    return key.strip().lower(), val


def _non_negative(kind: type) -> Callable[[str], object]:
    def parse(value: str) -> object:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if number < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {value!r}")
        return number

    return parse


def add_query_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``query`` subcommand to the ``flightsql`` command."""
    query = commands.add_parser(
        "query",
        help="run a SQL query on a Flight SQL server and print or save the result",
        description="Run one SQL query on a Flight SQL server. The result is printed as a table, "
        "or streamed to --output FILE in the format its extension names "
        f"({', '.join(OUTPUT_FORMATS)}). Every endpoint of the result is read, several at a "
        "time, at its own location. Exit codes: 0 success, 1 the query failed, 2 usage, "
        "3 authentication or permission, 4 server unreachable, 5 timeout, 6 output file, "
        "130 interrupted.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    query.add_argument("sql", metavar="SQL", help="the query; '-' reads it from standard input")
    query.add_argument("--uri", default=os.environ.get(ENV_URI, DEFAULT_URI),
                       help=f"server to ask: grpc://HOST:PORT or grpc+tls://HOST:PORT (environment: {ENV_URI})")
    query.add_argument("--user", default=None,
                       help=f"log in as this user; the password comes from --password-stdin, "
                       f"the environment variable {ENV_PASSWORD}, or a prompt on a terminal")
    query.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    query.add_argument("--token", default=None,
                       help=f"bearer token instead of user and password (environment: {ENV_TOKEN})")
    query.add_argument("--tls-root-certs", type=Path, default=None, metavar="FILE",
                       help="PEM file of the certificate authorities to trust (grpc+tls:// only)")
    query.add_argument("--tls-skip-verify", action="store_true",
                       help="do not verify the server's certificate (grpc+tls:// only; insecure)")
    query.add_argument("--header", dest="headers", type=_header, action="append", default=[],
                       metavar="KEY=VALUE", help="send this gRPC header with every call (repeatable)")
    query.add_argument("--timeout", type=_non_negative(float), default=0.0, metavar="SECONDS",
                       help="give up when the whole query (log in, plan, read) takes longer; 0: no limit")
    query.add_argument("--output", "-o", type=Path, default=None, metavar="FILE",
                       help="write the result to FILE instead of printing it; the extension picks the "
                       "format: .parquet, .csv, .arrow or .feather (Arrow IPC file), .arrows (Arrow IPC "
                       "stream). FILE is replaced only once the whole result is written")
    query.add_argument("--max-rows", type=_non_negative(int), default=100, metavar="N",
                       help="print at most N rows and count the rest; 0: print every row "
                       "(holds them all in memory)")
    query.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                       help="progress display on standard error: auto shows it when standard error "
                       "is a terminal")
    query.add_argument("--parallel", type=_non_negative(int), default=8, metavar="N",
                       help="endpoints read at the same time (an ordered result is read one endpoint "
                       "at a time, in order)")
    query.add_argument("--quiet", "-q", action="store_true",
                       help="no summary line on standard error after writing --output")


def _normalize_uri(uri: str) -> str:
    uri = uri.strip()
    if "://" not in uri:
        uri = f"grpc://{uri}"
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise UsageError(f"--uri must start with {', '.join(s + '://' for s in SCHEMES)}, got {uri!r}")
    return uri


def output_format(path: Path) -> str:
    """The format an output file's extension names; refuses any other extension."""
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(OUTPUT_FORMATS)
        raise UsageError(f"cannot tell the format of {str(path)!r} from its extension: use one of {known}")
    return fmt


def _password(args: argparse.Namespace, stdin: TextIO, environ: Mapping[str, str],
              prompt: Callable[[str], str]) -> str | None:
    if args.password_stdin:
        if not args.user:
            raise UsageError("--password-stdin needs --user")
        return stdin.readline().rstrip("\r\n")
    if not args.user:
        return None
    if ENV_PASSWORD in environ:
        return environ[ENV_PASSWORD]
    if stdin.isatty():
        return prompt(f"password for {args.user}: ")
    raise UsageError(f"no password for {args.user}: pass --password-stdin or set {ENV_PASSWORD}")


def resolve(args: argparse.Namespace, stdin: TextIO | None = None, environ: Mapping[str, str] | None = None,
            prompt: Callable[[str], str] = getpass.getpass) -> QueryOptions:
    """Check the parsed arguments and load what they point at (SQL, password, certificates)."""
    stdin = sys.stdin if stdin is None else stdin
    environ = os.environ if environ is None else environ
    uri = _normalize_uri(args.uri)
    if args.user and args.token:
        raise UsageError("pass either --user or --token, not both")
    if args.sql == "-" and args.password_stdin:
        raise UsageError("standard input cannot hold both the SQL and the password")
    fmt = output_format(args.output) if args.output is not None else None
    if args.output is not None and not args.output.parent.is_dir():
        raise UsageError(f"no such directory for --output: {str(args.output.parent)!r}")
    password = _password(args, stdin, environ, prompt)
    sql = stdin.read() if args.sql == "-" else args.sql
    if not sql.strip():
        raise UsageError("the SQL is empty")
    token = None if args.user else (args.token or environ.get(ENV_TOKEN) or None)
    tls = uri.startswith("grpc+tls://")
    if (args.tls_root_certs or args.tls_skip_verify) and not tls:
        raise UsageError("--tls-root-certs and --tls-skip-verify need a grpc+tls:// URI")
    certs = None
    if args.tls_root_certs is not None:
        try:
            certs = args.tls_root_certs.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read --tls-root-certs: {exc.strerror}: {str(args.tls_root_certs)!r}") from None
    if args.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    return QueryOptions(
        uri=uri, sql=sql, user=args.user or None, password=password, token=token,
        tls_root_certs=certs, tls_skip_verify=args.tls_skip_verify, headers=tuple(args.headers),
        timeout=args.timeout or None, output=args.output, output_format=fmt, max_rows=args.max_rows,
        progress=args.progress, parallel=args.parallel, quiet=args.quiet,
    )
