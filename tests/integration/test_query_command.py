"""`flightsql query` run as a user runs it, against a real node."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as csv
import pyarrow.flight as flight
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import OTHER_PASSWORD, OTHER_USER, PASSWORD, USER, RunningNode, connect, flight_client

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TRIPS = """
SELECT trip_id, trip_date, city, fare, minutes,
       TIMESTAMP'2024-03-10 01:30:00' + make_interval(0, 0, 0, 0, CAST(trip_id % 48 AS INT), 0, 0) AS ts,
       CASE WHEN trip_id % 7 = 0 THEN NULL ELSE CONCAT(city, '-', trip_id) END AS label
FROM demo.trips WHERE trip_id < 3000 ORDER BY trip_id
"""


def _query(node: RunningNode | str, *args: str, user: str | None = USER, password: str | None = PASSWORD,
           stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTSQL_")}
    if password is not None:
        env["FLIGHTSQL_PASSWORD"] = password
    uri = node if isinstance(node, str) else node.uri
    command = [sys.executable, "-m", "flightsql.cli", "query", "--uri", uri]
    if user is not None:
        command += ["--user", user]
    return subprocess.run(command + list(args), input=stdin or "", capture_output=True, text=True,
                          env=env, timeout=timeout)


def _adbc(node: RunningNode, sql: str) -> pa.Table:
    with connect(node) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_prints_a_table_of_the_result(node: RunningNode) -> None:
    result = _query(node, "SELECT city, count(*) AS trips, min(trip_id) AS first FROM demo.trips "
                          "GROUP BY city ORDER BY city")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["city", "trips", "first"]
    assert rows[2:7] == [["Berlin", "20000", "0"], ["Lisbon", "20000", "1"], ["Osaka", "20000", "2"],
                         ["Quito", "20000", "3"], ["Tunis", "20000", "4"]]
    assert rows[7] == ["5", "rows"]


def test_printing_keeps_the_first_rows_and_counts_all(node: RunningNode) -> None:
    result = _query(node, "--max-rows", "4", "SELECT trip_id, city FROM demo.trips ORDER BY trip_id")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split() for line in lines[2:6]] == [["0", "Berlin"], ["1", "Lisbon"], ["2", "Osaka"], ["3", "Quito"]]
    assert lines[6] == "first 4 of 100,000 rows (--max-rows 4)"


def test_sql_from_standard_input(node: RunningNode) -> None:
    result = _query(node, "-", stdin="SELECT 6 * 7 AS answer, NULL AS nothing")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2].split() == ["42", "NULL"]


def _read_back(path: Path, schema: pa.Schema) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".csv":
        options = csv.ConvertOptions(column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False)
        return csv.read_csv(path, convert_options=options)
    if path.suffix == ".arrows":
        return ipc.open_stream(pa.memory_map(str(path))).read_all()
    return ipc.open_file(pa.memory_map(str(path))).read_all()


@pytest.mark.parametrize("name", ["trips.parquet", "trips.csv", "trips.arrow", "trips.arrows"])
def test_output_file_equals_the_same_query_through_adbc(node: RunningNode, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    result = _query(node, "--output", str(path), TRIPS)
    assert result.returncode == 0, result.stderr
    assert "wrote 3,000 rows to" in result.stderr
    expected = _adbc(node, TRIPS)
    written = _read_back(path, expected.schema)
    assert written.num_rows == 3000
    assert written.equals(expected), (written.schema, expected.schema)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_result_of_many_batches_streams_to_a_file_complete(node: RunningNode, tmp_path: Path) -> None:
    path = tmp_path / "ids.arrows"
    result = _query(node, "--progress", "always", "-o", str(path), "SELECT id FROM range(0, 3000000, 1, 8)")
    assert result.returncode == 0, result.stderr
    ids = ipc.open_stream(pa.memory_map(str(path))).read_all().column("id")
    assert len(ids) == 3_000_000
    assert pc.count_distinct(ids).as_py() == 3_000_000
    assert pc.min_max(ids).as_py() == {"min": 0, "max": 2_999_999}
    progress = ANSI.sub("", result.stderr)
    assert "3,000,000 rows" in progress and "rows/s" in progress
    assert "wrote 3,000,000 rows to" in progress


def test_no_progress_display_when_standard_error_is_not_a_terminal(node: RunningNode, tmp_path: Path) -> None:
    result = _query(node, "-o", str(tmp_path / "ids.parquet"), "SELECT id FROM range(0, 50000, 1, 2)")
    assert result.returncode == 0, result.stderr
    assert "rows/s" not in result.stderr and "\x1b[" not in result.stderr
    assert pq.read_metadata(tmp_path / "ids.parquet").num_rows == 50000


def test_bad_sql_exits_with_the_servers_message(node: RunningNode) -> None:
    missing = _query(node, "SELECT * FROM no_such_table")
    assert missing.returncode == 1 and missing.stdout == ""
    assert _one_error_line(missing).startswith("flightsql query: NOT_FOUND: [TABLE_OR_VIEW_NOT_FOUND] ")
    syntax = _query(node, "SELEC 1")
    assert syntax.returncode == 1
    assert _one_error_line(syntax).startswith("flightsql query: INVALID_ARGUMENT: [PARSE_SYNTAX_ERROR] ")


def test_a_query_that_fails_while_streaming_leaves_no_file(node: RunningNode, tmp_path: Path) -> None:
    path = tmp_path / "never.parquet"
    result = _query(node, "-o", str(path),
                    "SELECT CASE WHEN id = 15000 THEN raise_error('boom') ELSE id END AS x FROM range(0, 20000, 1, 2)")
    assert result.returncode == 1
    assert "boom" in _one_error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_wrong_password_is_an_authentication_failure(node: RunningNode) -> None:
    result = _query(node, "SELECT 1", password="not-the-password")
    assert result.returncode == 3
    assert _one_error_line(result).startswith("flightsql query: UNAUTHENTICATED: ")


def test_password_from_stdin_and_bearer_token(node: RunningNode) -> None:
    other = _query(node, "--password-stdin", "SELECT 'ok' AS logged_in", user=OTHER_USER, password=None,
                   stdin=OTHER_PASSWORD + "\n")
    assert other.returncode == 0, other.stderr
    assert other.stdout.splitlines()[2].strip() == "ok"
    wrong = _query(node, "--password-stdin", "SELECT 1", user=OTHER_USER, password=OTHER_PASSWORD, stdin="nope\n")
    assert wrong.returncode == 3  # standard input wins over FLIGHTSQL_PASSWORD
    client, options = flight_client(node)
    _, bearer = options.headers[0]
    client.close()
    token = bearer.decode().split(" ", 1)[1]
    with_token = _query(node, "--token", token, "SELECT 1 AS one", user=None, password=None)
    assert with_token.returncode == 0, with_token.stderr
    bad_token = _query(node, "--token", "not-a-token", "SELECT 1 AS one", user=None, password=None)
    assert bad_token.returncode == 3
    assert "UNAUTHENTICATED" in _one_error_line(bad_token)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_exits_clearly() -> None:
    result = _query(f"grpc://127.0.0.1:{_closed_port()}", "SELECT 1", timeout=60)
    assert result.returncode == 4
    assert _one_error_line(result).startswith("flightsql query: UNAVAILABLE: ")


def test_unknown_output_extension_is_refused_before_querying(tmp_path: Path) -> None:
    # The server is unreachable: exit code 2, not 4, shows nothing was asked.
    result = _query(f"grpc://127.0.0.1:{_closed_port()}", "-o", str(tmp_path / "r.xlsx"), "SELECT 1", timeout=60)
    assert result.returncode == 2
    assert "cannot tell the format" in _one_error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_timeout_exits_with_its_own_code(node: RunningNode) -> None:
    result = _query(node, "--timeout", "0.01", "SELECT id FROM range(0, 3000000, 1, 8)")
    assert result.returncode == 5
    assert _one_error_line(result).startswith("flightsql query: DEADLINE_EXCEEDED: ")


def test_every_endpoint_is_read_at_its_location(node: RunningNode) -> None:
    from flightsql.client.connection import Connection, Deadline
    from flightsql.client.endpoints import ResultStreams
    from flightsql.client.options import QueryOptions

    options = QueryOptions(uri=node.uri, sql="", user=USER, password=PASSWORD)
    with Connection(options, Deadline(120)) as connection:
        connection.login()
        info = connection.flight_info("SELECT id FROM range(0, 200000, 1, 4)")
        with ResultStreams(connection, info) as streams:
            rows = sum(batch.num_rows for batch in streams)
        assert rows == 200_000 == sum(e.rows for e in streams.endpoints)
        assert all(e.done for e in streams.endpoints)

        # The same (re-readable) endpoint offered once per kind of location: empty (the
        # server asked), the node's own URI, reuse-connection, and a dead node before a live one.
        endpoint = info.endpoints[0]
        dead = f"grpc://127.0.0.1:{_closed_port()}"
        locations = [[], [node.uri], ["arrow-flight-reuse-connection://?"], [dead, node.uri]]
        multi = flight.FlightInfo(info.schema, info.descriptor,
                                  [flight.FlightEndpoint(endpoint.ticket, where) for where in locations], -1, -1)
        with ResultStreams(connection, multi, parallel=4) as streams:
            ids = pa.concat_arrays([batch.column(0) for batch in streams])
        assert [e.rows for e in streams.endpoints] == [200_000] * 4
        assert len(ids) == 800_000
        assert pc.count_distinct(ids).as_py() == 200_000
        assert streams.endpoints[3].location == node.uri
