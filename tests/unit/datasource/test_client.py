"""The data source as a client: its imports, and servers that refuse or cannot be reached."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from datasource.client import connection, server_errors
from datasource.errors import FlightSqlIngestRefusedError, FlightSqlServerError
from datasource.options import parse_options
from datasource.sql import Dialect
from datasource.sqlinfo import get_sql_info_command, identifier_quote
from datasource.writer import ingest

PACKAGE = Path(__file__).resolve().parents[3] / "datasource"
SERVER_PACKAGES = ("flightsql", "flightmanager")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_module_imports_a_server_package() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        offending = [m for m in _imported_modules(module) if m.split(".")[0] in SERVER_PACKAGES]
        assert offending == [], f"{module.name} imports {offending}"


def test_importing_the_data_source_loads_no_server_package() -> None:
    probe = (
        "import sys, datasource, datasource.source, datasource.reader, datasource.writer, datasource.sqlinfo\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_PACKAGES!r}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            cwd=PACKAGE.parent, check=True)
    assert result.stdout.strip() == "[]"


@pytest.fixture()
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_reported_with_its_status(closed_port: int) -> None:
    options = parse_options({"uri": f"grpc://127.0.0.1:{closed_port}", "query": "SELECT 1", "timeout": "10"}, "read")
    with pytest.raises(FlightSqlServerError) as caught:
        with connection(options, "GetSchema") as conn, conn.cursor() as cursor:
            with server_errors(options, "GetSchema"):
                cursor.adbc_execute_schema("SELECT 1")
    error = caught.value
    assert error.status == "UNAVAILABLE" and error.uri == options.uri
    assert str(error).startswith(f"GetSchema at {options.uri} failed: UNAVAILABLE: ")
    assert "connection refused" in str(error) and "Vendor code" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__  # the driver's exception is not chained


class PlainFlightServer(flight.FlightServerBase):  # type: ignore[misc]
    """A Flight server that speaks no Flight SQL: every Flight SQL request is unimplemented."""


@pytest.fixture()
def plain_server() -> Iterator[str]:
    server = PlainFlightServer("grpc://127.0.0.1:0")
    yield f"grpc://127.0.0.1:{server.port}"
    server.shutdown()


def test_a_server_without_ingest_is_named_as_refusing_it(plain_server: str) -> None:
    options = parse_options({"uri": plain_server, "table": "demo.t", "timeout": "10"}, "write")
    schema = pa.schema([("a", pa.int64())])
    rows = pa.RecordBatchReader.from_batches(schema, [pa.record_batch([pa.array([1, 2])], schema=schema)])
    with pytest.raises(FlightSqlIngestRefusedError) as caught:
        ingest(options, options.table, rows, "append")  # type: ignore[arg-type]
    assert "does not accept bulk ingest (CommandStatementIngest)" in str(caught.value)
    assert caught.value.status in ("UNIMPLEMENTED", "NOT_IMPLEMENTED")


def test_a_server_without_sql_info_is_taken_to_quote_like_ansi(plain_server: str) -> None:
    options = parse_options({"uri": plain_server, "table": "t", "timeout": "10"}, "read")
    assert identifier_quote(options) == '"'
    assert Dialect(identifier_quote(options)).quote("t") == '"t"'


def test_the_identifier_quote_option_skips_the_request(closed_port: int) -> None:
    options = parse_options({"uri": f"grpc://127.0.0.1:{closed_port}", "table": "t", "identifierQuote": "`"}, "read")
    assert identifier_quote(options) == "`"


def test_an_unreachable_server_is_not_guessed_to_be_ansi(closed_port: int) -> None:
    options = parse_options({"uri": f"grpc://127.0.0.1:{closed_port}", "table": "t", "timeout": "10"}, "read")
    with pytest.raises(FlightSqlServerError, match="GetSqlInfo at .* failed: UNAVAILABLE"):
        identifier_quote(options)


def test_get_sql_info_command_is_what_protobuf_decodes() -> None:
    from google.protobuf import any_pb2

    from flightsql.protocol import FlightSql_pb2  # the server's generated messages, to decode with

    wrapper = any_pb2.Any.FromString(get_sql_info_command(504, 0))
    command = FlightSql_pb2.CommandGetSqlInfo()
    assert wrapper.Unpack(command)
    assert list(command.info) == [504, 0]
