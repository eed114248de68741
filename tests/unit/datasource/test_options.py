"""Options of the flightsql data source: what is accepted, what is refused and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasource.client import driver_options
from datasource.errors import FlightSqlOptionError, FlightSqlSourceError
from datasource.options import SourceOptions, TableName, parse_options, parse_table_name

URI = "grpc://db.example:31337"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_a_query_read_with_every_option() -> None:
    options = parse_options(
        {
            "uri": "grpc+tls://db.example:443", "query": "SELECT 1;  ", "user": "alice", "password": "pw",
            "tlsrootcerts": PEM, "tlsskipverify": "TRUE", "tlsoverridehostname": "db.internal",
            "header.x-tenant": "blue", "header.x-trace": "7", "timeout": "2.5", "pushfilters": "true",
            "identifierquote": "`",
        },
        "read",
    )
    assert options == SourceOptions(
        uri="grpc+tls://db.example:443", query="SELECT 1", user="alice", password="pw", tls_root_certs=PEM,
        tls_skip_verify=True, tls_override_hostname="db.internal", headers=(("x-tenant", "blue"), ("x-trace", "7")),
        timeout=2.5, push_filters=True, identifier_quote="`",
    )
    assert options.uses_tls
    assert "pw" not in repr(options)  # secrets stay out of logs and plans


def test_option_names_are_case_insensitive_and_defaults_are_off() -> None:
    options = parse_options({"URI": URI, "Table": "cat.sch.trips", "UserName": "bob", "PassWord": "x"}, "read")
    assert options.table == TableName("trips", "sch", "cat")
    assert options.user == "bob" and not options.push_filters and options.timeout is None
    assert options.identifier_quote is None and options.headers == ()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"query": "SELECT 1", "table": "t"}, "either the 'query' or the 'table' option, not both"),
        ({}, "give the 'query' option (a SQL query) or the 'table' option"),
        ({"query": "  ;  "}, "the 'query' option is empty"),
        ({"query": "SELECT 1", "qeury": "x"}, "unknown option(s) for a read: qeury"),
        ({"query": "SELECT 1", "user": "alice"}, "'user' and 'password' options go together"),
        ({"query": "SELECT 1", "token": "t", "user": "a", "password": "b"}, "either 'token' or 'user'"),
        ({"query": "SELECT 1", "user": "a", "username": "b", "password": "c"}, "'user' and 'username' options differ"),
        ({"query": "SELECT 1", "tlsSkipVerify": "true"}, "TLS options need a grpc+tls:// URI"),
        ({"query": "SELECT 1", "pushFilters": "maybe"}, "'pushFilters' option is true or false"),
        ({"query": "SELECT 1", "timeout": "soon"}, "'timeout' option is a number of seconds"),
        ({"query": "SELECT 1", "timeout": "0"}, "'timeout' option must be positive"),
        ({"query": "SELECT 1", "identifierQuote": "'"}, "'identifierQuote' option is one of"),
        ({"query": "SELECT 1", "header.bad name": "x"}, "invalid header name"),
    ],
)
def test_refused_read_options(given: dict[str, str], message: str) -> None:
    with pytest.raises(FlightSqlOptionError) as caught:
        parse_options({"uri": URI, **given}, "read")
    assert message in str(caught.value)
    assert isinstance(caught.value, (FlightSqlSourceError, ValueError))


@pytest.mark.parametrize(
    ("uri", "message"),
    [(None, "the 'uri' option is required"), ("http://db:80", "must start with one of"), ("db:31337", "must start with one of")],
)
def test_the_uri_is_a_flight_uri(uri: str | None, message: str) -> None:
    given = {"query": "SELECT 1"} if uri is None else {"uri": uri, "query": "SELECT 1"}
    with pytest.raises(FlightSqlOptionError, match=message):
        parse_options(given, "read")


def test_a_write_needs_a_table_and_takes_no_read_options() -> None:
    assert parse_options({"uri": URI, "table": "t"}, "write").table == TableName("t")
    with pytest.raises(FlightSqlOptionError, match="a write needs the 'table' option"):
        parse_options({"uri": URI}, "write")
    with pytest.raises(FlightSqlOptionError, match="unknown option.*query"):
        parse_options({"uri": URI, "table": "t", "query": "SELECT 1"}, "write")


def test_root_certificates_may_come_from_a_file(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text(PEM)
    given = {"uri": "grpc+tls://db:443", "query": "SELECT 1"}
    assert parse_options({**given, "tlsRootCerts": str(pem)}, "read").tls_root_certs == PEM
    with pytest.raises(FlightSqlOptionError, match="cannot read 'tlsRootCerts' file"):
        parse_options({**given, "tlsRootCerts": str(tmp_path / "missing.pem")}, "read")
    (tmp_path / "empty.pem").write_text("nothing here")
    with pytest.raises(FlightSqlOptionError, match="holds no PEM certificate"):
        parse_options({**given, "tlsRootCerts": str(tmp_path / "empty.pem")}, "read")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("trips", TableName("trips")),
        ("demo.trips", TableName("trips", "demo")),
        ("spark_catalog.demo.trips", TableName("trips", "demo", "spark_catalog")),
        ('"my db"."odd.name"', TableName("odd.name", "my db")),
        ("`a``b`.c", TableName("c", "a`b")),
        ('"say ""hi"""', TableName('say "hi"')),
        ("[dbo].[Order Details]", TableName("Order Details", "dbo")),
    ],
)
def test_table_names(text: str, name: TableName) -> None:
    assert parse_table_name(text) == name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.b.c.d", "at most three parts"),
        ("a..b", "empty part"),
        ('"open', "unclosed quote"),
        ('"a"b', "expected '.' after a quoted part"),
        ('a"b', "misplaced quote"),
        (".", "empty part"),
    ],
)
def test_refused_table_names(text: str, message: str) -> None:
    with pytest.raises(FlightSqlOptionError, match=message):
        parse_table_name(text)


def test_driver_options_carry_credentials_tls_headers_and_timeouts() -> None:
    options = parse_options(
        {"uri": "grpc+tls://db:443", "query": "SELECT 1", "token": "abc", "tlsRootCerts": PEM, "tlsSkipVerify": "true",
         "header.x-tenant": "blue", "timeout": "30"},
        "read",
    )
    assert driver_options(options) == {
        "adbc.flight.sql.authorization_header": "Bearer abc",
        "adbc.flight.sql.client_option.tls_root_certs": PEM,
        "adbc.flight.sql.client_option.tls_skip_verify": "true",
        "adbc.flight.sql.rpc.call_header.x-tenant": "blue",
        "adbc.flight.sql.rpc.timeout_seconds.query": "30.0",
        "adbc.flight.sql.rpc.timeout_seconds.fetch": "30.0",
        "adbc.flight.sql.rpc.timeout_seconds.update": "30.0",
    }
    basic = parse_options({"uri": URI, "query": "SELECT 1", "user": "alice", "password": "pw"}, "read")
    assert driver_options(basic) == {"username": "alice", "password": "pw"}
