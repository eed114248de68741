"""``flightsql query``: run one SQL query, print the result or stream it to a file.

The steps, each in its own module: check the options (``options``), log in and
plan the query (``connection``), read every endpoint (``endpoints``) into a sink
(``output``, ``table``) while the progress display (``progress``) counts rows
and bytes. Any failure ends as one line on standard error and an exit code
(:class:`~flightsql.client.errors.ExitCode`); a query that fails after planning
is cancelled on the server so its result is freed at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from flightsql.client.errors import ClientError, ExitCode, IncompleteResult, UsageError
from flightsql.client.options import QueryOptions, add_query_parser, resolve

PROG = "flightsql query"

__all__ = ["add_query_parser", "run_query"]


def run_query(args: argparse.Namespace) -> int:
    """Run ``flightsql query`` with parsed arguments; returns the exit code."""
    try:
        options = resolve(args)
        return _run(options)
    except ClientError as exc:
        _say(exc.message)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        _say("interrupted")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader of standard output went away (| head): nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.OK)


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _run(options: QueryOptions) -> int:
    try:
        from rich import filesize
    except ImportError:
        raise UsageError("flightsql query draws its tables and progress with rich: "
                         "pip install 'spark-flightsql[client]'") from None

    from flightsql.client.connection import Connection, Deadline
    from flightsql.client.endpoints import ResultStreams
    from flightsql.client.output import open_sink
    from flightsql.client.progress import QueryProgress

    started = time.monotonic()
    sink = open_sink(options)
    with Connection(options, Deadline(options.timeout)) as connection:
        connection.login()
        info = connection.flight_info(options.sql)
        complete = False
        try:
            progress = QueryProgress(options.progress, len(info.endpoints), info.total_records)
            streams = ResultStreams(connection, info, options.parallel, on_endpoint_done=progress.endpoint_done)
            if streams.schema is not None:
                sink.begin(streams.schema)
            with progress, streams:
                for batch in streams:
                    if not sink.started:
                        sink.begin(batch.schema)
                    sink.write(batch)
                    progress.advance(batch.num_rows, batch.nbytes)
                if info.total_records >= 0 and info.total_records != streams.rows:
                    raise IncompleteResult(
                        f"the server announced {info.total_records:,} rows but sent {streams.rows:,}"
                    )
                progress.finish()
            if not sink.started:
                sink.begin(streams.schema if streams.schema is not None else info.schema)
            sink.finish()
            complete = True
        finally:
            if not complete:
                sink.abort()
                connection.cancel(info)
    if options.output is not None and not options.quiet:
        seconds = time.monotonic() - started
        endpoints = len(info.endpoints)
        _say(
            f"wrote {sink.rows:,} {'row' if sink.rows == 1 else 'rows'} to {options.output} "
            f"({filesize.decimal(sink.bytes)} of Arrow data from {endpoints} "
            f"{'endpoint' if endpoints == 1 else 'endpoints'} in {seconds:.1f} s)"
        )
    return int(ExitCode.OK)
