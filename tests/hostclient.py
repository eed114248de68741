"""A client for the many-hosts tests, run on the test bed's client host.

Reads a query's result with ``pyarrow.flight`` (every endpoint at its own location,
in parallel, each reader timed) or with the ADBC driver, and prints one JSON object:
per endpoint its location, rows, sum and distinct count of ``id``, the hosts that
computed its rows (column ``host`` if present), its error and when it ended.  With
``--signal``, it prints ``reading`` once every endpoint has delivered a first batch
(a test then injects its fault) and goes on.

    python -m tests.hostclient flight --uri grpc://h1:31337 --user u --password p SQL
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight


def _summary(table: pa.Table) -> dict[str, Any]:
    ids = table.column("id") if "id" in table.column_names else None
    hosts = sorted(set(table.column("host").to_pylist())) if "host" in table.column_names else []
    return {
        "rows": table.num_rows,
        "sum": None if ids is None else (pc.sum(ids).as_py() or 0),
        "distinct": None if ids is None else pc.count_distinct(ids).as_py(),
        "hosts": hosts,
    }


def read_flight(args: argparse.Namespace) -> dict[str, Any]:
    from flightsql.protocol import codec
    from flightsql.protocol import commands as cmd

    started = time.monotonic()
    options_for: dict[str, flight.FlightCallOptions] = {}

    def connect(uri: str) -> tuple[flight.FlightClient, flight.FlightCallOptions]:
        client = flight.connect(uri)
        header = client.authenticate_basic_token(args.user, args.password)
        options_for[uri] = flight.FlightCallOptions(headers=[header], timeout=args.timeout)
        return client, options_for[uri]

    client, options = connect(args.uri)
    for statement in args.before:
        ahead = client.get_flight_info(
            flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=statement))), options)
        for endpoint in ahead.endpoints:
            client.do_get(endpoint.ticket, options).read_all()
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=args.sql)))
    info = client.get_flight_info(descriptor, options)
    endpoints: list[dict[str, Any]] = [{} for _ in info.endpoints]
    progress = threading.Condition()
    started_readers: set[int] = set()  # endpoints that delivered a first batch or ended

    def begun(index: int) -> None:
        with progress:
            started_readers.add(index)
            progress.notify_all()

    def read(index: int, endpoint: flight.FlightEndpoint) -> None:
        (location,) = endpoint.locations
        uri = location.uri.decode()
        result: dict[str, Any] = {"location": uri}
        endpoints[index] = result
        try:
            reader_client, reader_options = connect(uri)
            reader = reader_client.do_get(endpoint.ticket, reader_options)
            batches = []
            for chunk in reader:
                batches.append(chunk.data)
                begun(index)
            table = pa.Table.from_batches(batches, reader.schema)
            result.update(_summary(table))
        except Exception as exc:  # noqa: BLE001 - reported to the test
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            result["ended"] = time.monotonic()
            begun(index)

    threads = [threading.Thread(target=read, args=(i, e), daemon=True) for i, e in enumerate(info.endpoints)]
    for thread in threads:
        thread.start()
    faulted = reading_at = started
    if args.signal:
        with progress:
            progress.wait_for(lambda: len(started_readers) == len(threads), timeout=args.timeout)
        print("reading", flush=True)
        reading_at = time.monotonic()
        sys.stdin.readline()  # the test injects its fault, then writes a line
        faulted = time.monotonic()  # every reader's end is timed from here
    for thread in threads:
        thread.join()
    origin = faulted
    for result in endpoints:
        result["seconds"] = round(result.pop("ended", origin) - origin, 3)
    return {"endpoints": endpoints, "seconds": round(time.monotonic() - started, 3),
            "reading_at": round(reading_at - started, 3)}


def read_adbc(args: argparse.Namespace) -> dict[str, Any]:
    import adbc_driver_flightsql.dbapi as dbapi
    from adbc_driver_flightsql import DatabaseOptions

    started = time.monotonic()
    kwargs = {"username": args.user, "password": args.password,
              DatabaseOptions.TIMEOUT_FETCH.value: str(args.timeout),
              DatabaseOptions.TIMEOUT_QUERY.value: str(args.timeout)}
    try:
        with dbapi.connect(args.uri, db_kwargs=kwargs) as connection, connection.cursor() as cursor:
            cursor.execute(args.sql)
            result = _summary(cursor.fetch_arrow_table())
    except Exception as exc:  # noqa: BLE001 - reported to the test
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hostclient")
    parser.add_argument("via", choices=["flight", "adbc"])
    parser.add_argument("sql")
    parser.add_argument("--uri", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--before", action="append", default=[], help="a statement to run first (SET ...)")
    parser.add_argument("--signal", action="store_true",
                        help="print 'reading' once every endpoint delivered a batch, then wait for a line on stdin")
    args = parser.parse_args(argv)
    result = read_flight(args) if args.via == "flight" else read_adbc(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
