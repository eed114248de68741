"""Tickets, statement handles, parameter markers, Spark message cleaning and settings."""

from __future__ import annotations

import datetime
import socket
from pathlib import Path

import grpc
import pyarrow as pa
import pytest

from flightsql import settings as settings_module
from flightsql.errors import InvalidArgument, PermissionDenied
from flightsql.server.statements import count_parameter_markers, parameter_rows, parameter_schema, scan
from flightmanager.spark_errors import clean_message
from flightsql.server.tickets import Handles, ResultTicket, StatementHandle, Tickets
from flightsql.settings import Settings, load, parse_size

QUERY_ID = "0123456789abcdef0123456789abcdef"


# -- tickets and handles ---------------------------------------------------------
# Pinned encodings: do not change this test without a new version byte.


TICKET_KEY = bytes(range(32))


def test_result_ticket_encoding_is_pinned() -> None:
    # do not change this test without a new version byte
    assert Tickets(TICKET_KEY).issue(QUERY_ID, "alice") == (
        b"fsq\x02r0123456789abcdef0123456789abcdef" + bytes.fromhex("e7458778ea6b2addeb4444ec63d93b4b")
    )


def test_statement_handle_encoding_is_pinned() -> None:
    # do not change this test without a new version byte
    handle = Handles(TICKET_KEY).issue(StatementHandle(QUERY_ID, "SELECT 1"), "alice")
    body = b'{"id":"0123456789abcdef0123456789abcdef","sql":"SELECT 1"}'
    assert handle[:5] == b"fsq\x02p" and handle[21:] == body
    assert Handles(TICKET_KEY).open(handle, "alice") == StatementHandle(QUERY_ID, "SELECT 1")


def test_pinned_bytes_decode() -> None:
    # do not change this test without a new version byte
    assert ResultTicket.decode(b"fsq\x02rffffffffffffffff0000000000000000" + b"\x01" * 16) == ResultTicket(
        "ffffffffffffffff0000000000000000", b"\x01" * 16
    )


def test_statement_handles_carry_sql_and_bound_values_to_any_node_of_the_cluster() -> None:
    here, there = Handles(TICKET_KEY), Handles(TICKET_KEY)
    ids = {Handles.new_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 32 for i in ids)
    bound = StatementHandle(QUERY_ID, "SELECT ? || 'é'", b"\x00arrow\xff")
    assert there.open(here.issue(bound, "alice"), "alice") == bound


def test_a_statement_handle_opens_for_its_user_only() -> None:
    handles = Handles(TICKET_KEY)
    raw = handles.issue(StatementHandle(QUERY_ID, "SELECT secret FROM t"), "alice")
    tampered = raw.replace(b"secret", b"public")
    for data, user in ((raw, "bob"), (tampered, "alice"), (raw, "alice ")):
        with pytest.raises(PermissionDenied):
            handles.open(data, user)
    with pytest.raises(PermissionDenied):  # another cluster's key
        Handles(bytes(32)).open(raw, "alice")


MAC = b"\x00" * 16
FOREIGN_TICKETS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"fsq\x02r", id="prefix only"),
    pytest.param(b"fsq\x02r" + QUERY_ID[:-1].encode() + MAC, id="short"),
    pytest.param(b"fsq\x02r" + QUERY_ID.encode() + MAC + b"0", id="long"),
    pytest.param(b"fsq\x02r" + QUERY_ID.encode(), id="no mac"),
    pytest.param(b"fsq\x01r" + QUERY_ID.encode(), id="version 1, unbound to a user"),
    pytest.param(b"fsq\x03r" + QUERY_ID.encode() + MAC, id="other version"),
    pytest.param(b"fsq\x01p" + QUERY_ID.encode(), id="a statement handle"),
    pytest.param(b"fsq\x02r" + QUERY_ID.upper().encode() + MAC, id="upper-case hex"),
    pytest.param(b"fsq\x02r" + b"g" * 32 + MAC, id="not hex"),
    pytest.param(b"fsq\x02r" + b"\xff" * 32 + MAC, id="not ascii"),
    pytest.param(b"\x0a\x20" + QUERY_ID.encode(), id="a protobuf"),
]


@pytest.mark.parametrize("data", FOREIGN_TICKETS)
def test_foreign_tickets_are_invalid_arguments(data: bytes) -> None:
    with pytest.raises(InvalidArgument) as info:
        Tickets(TICKET_KEY).redeem(data, "alice")
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_a_ticket_opens_only_for_its_user() -> None:
    tickets = Tickets(TICKET_KEY)
    ticket = tickets.issue(QUERY_ID, "alice")
    assert tickets.redeem(ticket, "alice") == QUERY_ID
    assert Tickets(bytes(TICKET_KEY)).redeem(ticket, "alice") == QUERY_ID  # any node of the cluster
    with pytest.raises(PermissionDenied, match="not issued to you") as info:
        tickets.redeem(ticket, "bob")
    assert info.value.code is grpc.StatusCode.PERMISSION_DENIED


def test_altered_or_forged_tickets_open_nothing() -> None:
    tickets = Tickets(TICKET_KEY)
    ticket = tickets.issue(QUERY_ID, "alice")
    other_query = ticket[:5] + b"f" + ticket[6:]  # another query id, the same MAC
    flipped_mac = ticket[:-1] + bytes([ticket[-1] ^ 1])
    other_cluster = Tickets(bytes(32)).issue(QUERY_ID, "alice")
    for forged in (other_query, flipped_mac, other_cluster):
        with pytest.raises(PermissionDenied):
            tickets.redeem(forged, "alice")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"fsq\x02p" + b"\x00" * 10, id="short"),
        pytest.param(b"fsq\x01r" + QUERY_ID.encode(), id="a result ticket"),
        pytest.param(b"fsq\x01p" + QUERY_ID.encode(), id="an earlier version"),
        pytest.param(b"fsq\x03p" + QUERY_ID.encode(), id="other version"),
    ],
)
def test_foreign_statement_handles_are_invalid_arguments(data: bytes) -> None:
    with pytest.raises(InvalidArgument) as info:
        Handles(TICKET_KEY).open(data, "alice")
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT


# -- parameter markers -------------------------------------------------------------


@pytest.mark.parametrize(
    "sql, count",
    [
        ("", 0),
        ("SELECT 1", 0),
        ("SELECT ?", 1),
        ("SELECT ?, ?, ? FROM t WHERE a = ?", 4),
        ("SELECT * FROM t WHERE a=?AND b=?", 2),
        ("SELECT '?'", 0),
        ('SELECT "?"', 0),
        ("SELECT '?', ?", 1),
        ("SELECT 'a ? b' || ? || \"c ? d\"", 1),
        # escaped quotes inside literals
        ("SELECT 'it\\'s ?', ?", 1),
        ('SELECT "say \\"?\\"", ?', 1),
        ("SELECT 'it''s ?', ?", 1),
        ("SELECT 'back\\\\', ?", 1),
        ("SELECT '\"?\"', ?", 1),
        ("SELECT \"'?'\", ?", 1),
        # quoted identifiers
        ("SELECT `what?` FROM t WHERE x = ?", 1),
        ("SELECT `a``?` , ?", 1),
        ("SELECT `a\\`, ?", 1),  # no backslash escapes in backticks
        ("SELECT `'` , ?, `'`", 1),
        # line comments
        ("SELECT 1 -- why?\n, ?", 1),
        ("SELECT ? -- ?", 1),
        ("-- ?\n-- ?\nSELECT ?", 1),
        ("SELECT 1 - ?", 1),
        # block comments
        ("SELECT /* ? */ ?", 1),
        ("SELECT /* line 1 ?\n line 2 ? */ ?", 1),
        ("SELECT ? /**/ ?", 2),
        ("SELECT /*/ ? */ 1", 0),
        ("SELECT /* unterminated ?", 0),
        ("SELECT 1/?", 1),
        ("SELECT 'unterminated ?", 0),
        ("SELECT '/* ?', ? /* '?' */ -- ?", 1),
    ],
)
def test_count_parameter_markers(sql: str, count: int) -> None:
    assert count_parameter_markers(sql) == count


def test_count_parameter_markers_in_nested_block_comments() -> None:
    assert count_parameter_markers("SELECT /* outer /* inner */ still a comment ? */ 1") == 0


# -- parameter rows and schema ---------------------------------------------------


def test_parameter_rows_one_list_per_row() -> None:
    batch = pa.record_batch(
        [
            pa.array([1, None, 3], pa.int64()),
            pa.array(["a", "b", None]),
            pa.array([datetime.date(2024, 1, 1), None, datetime.date(2024, 12, 31)]),
        ],
        names=["p1", "p2", "p3"],
    )

    assert parameter_rows([batch]) == [
        [1, "a", datetime.date(2024, 1, 1)],
        [None, "b", None],
        [3, None, datetime.date(2024, 12, 31)],
    ]


def test_parameter_rows_across_batches() -> None:
    schema = pa.schema([("x", pa.float64())])
    batches = [
        pa.record_batch([pa.array([1.5])], schema=schema),
        pa.record_batch([pa.array([], pa.float64())], schema=schema),
        pa.record_batch([pa.array([2.5, 3.5])], schema=schema),
    ]
    assert parameter_rows(batches) == [[1.5], [2.5], [3.5]]


def test_parameter_rows_without_columns_keeps_the_row_count() -> None:
    batch = pa.RecordBatch.from_struct_array(pa.array([{}, {}], pa.struct([])))
    assert batch.num_columns == 0 and batch.num_rows == 2
    assert parameter_rows([batch]) == [[], []]


def test_parameter_rows_of_nothing() -> None:
    assert parameter_rows([]) == []


def test_parameter_schema_types_each_marker_as_its_context_implies() -> None:
    schema = parameter_schema(["integer", None, "decimal(10,2)", "timestamp", "array<int>"])
    assert schema.names == [f"parameter_{i}" for i in range(1, 6)]
    assert schema.types == [pa.int32(), pa.utf8(), pa.decimal128(10, 2), pa.timestamp("ms", tz="UTC"), pa.utf8()]
    assert len(parameter_schema([])) == 0


# -- Spark messages ------------------------------------------------------------------

NOT_FOUND_MESSAGE = (
    "[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found. Verify the spelling "
    "and correctness of the schema and catalog.\n"
    "If you did not qualify the name with a schema, verify the current_schema() output, or "
    "qualify the name with the correct schema and catalog.\n"
    "To tolerate the error on drop use DROP VIEW IF EXISTS or DROP TABLE IF EXISTS. "
    "SQLSTATE: 42P01; line 1 pos 14;\n"
    "'Project [*]\n"
    "+- 'UnresolvedRelation [nope], [], false\n"
)


def test_clean_message_drops_the_plan_dump() -> None:
    cleaned = clean_message(NOT_FOUND_MESSAGE)

    assert cleaned.startswith("[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found.")
    assert cleaned.endswith("SQLSTATE: 42P01; line 1 pos 14")
    assert "Project" not in cleaned
    assert "UnresolvedRelation" not in cleaned
    assert cleaned.count("\n") == 2


def test_clean_message_drops_the_jvm_stack() -> None:
    text = (
        "[DIVIDE_BY_ZERO] Division by zero. Use `try_divide` to tolerate divisor being 0. "
        "SQLSTATE: 22012\n"
        "== SQL (line 1, position 8) ==\n"
        "SELECT 1/0\n"
        "       ^^^\n"
        "\n"
        "\n"
        "JVM stacktrace:\n"
        "org.apache.spark.SparkArithmeticException: [DIVIDE_BY_ZERO] Division by zero.\n"
        "\tat org.apache.spark.sql.errors.QueryExecutionErrors$.divideByZeroError(QueryExecutionErrors.scala:203)\n"
        "\tat org.apache.spark.sql.catalyst.expressions.DivModLike.eval(arithmetic.scala:680)\n"
    )

    cleaned = clean_message(text)

    assert cleaned == (
        "[DIVIDE_BY_ZERO] Division by zero. Use `try_divide` to tolerate divisor being 0. "
        "SQLSTATE: 22012\n"
        "== SQL (line 1, position 8) ==\n"
        "SELECT 1/0\n"
        "       ^^^"
    )


def test_clean_message_stops_at_stack_lines_without_a_header() -> None:
    text = "java.lang.IllegalStateException: bad state\n\tat a.b.C.d(C.java:1)\n\tat e.f.G.h(G.java:2)"
    assert clean_message(text) == "java.lang.IllegalStateException: bad state"


def test_clean_message_drops_an_indented_plan() -> None:
    text = "[UNRESOLVED_COLUMN] cannot resolve `x`; line 1 pos 7;\n   +- Project [x]\n   +- Range"
    assert clean_message(text) == "[UNRESOLVED_COLUMN] cannot resolve `x`; line 1 pos 7"


def test_clean_message_keeps_a_plain_message() -> None:
    assert clean_message("  [PARSE_SYNTAX_ERROR] Syntax error at or near 'FORM'. SQLSTATE: 42601  ") == (
        "[PARSE_SYNTAX_ERROR] Syntax error at or near 'FORM'. SQLSTATE: 42601"
    )


def test_clean_message_is_bounded() -> None:
    message = clean_message("x" * 10_000)
    assert len(message) == 2000 and message.endswith("…")


def test_clean_message_keeps_no_server_path() -> None:
    text = "[PATH_NOT_FOUND] Path does not exist: file:/srv/node-1/warehouse/sales. SQLSTATE: 42K03"
    assert clean_message(text) == "[PATH_NOT_FOUND] Path does not exist: …/sales. SQLSTATE: 42K03"


@pytest.mark.parametrize("sql, markers, depth", [
    ("SELECT 1", 0, 0),
    ("SELECT ((1)), f(?, [2])", 1, 2),
    ("SELECT '((((' AS s, `a(` FROM t -- ((((", 0, 0),
    ("SELECT /* ( [ */ (1)", 0, 1),
])
def test_scan_counts_markers_and_bracket_depth_outside_literals(sql: str, markers: int, depth: int) -> None:
    assert scan(sql) == (markers, depth)


# -- settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, size",
    [
        ("1048576", 1048576),
        ("0", 0),
        ("1k", 1024),
        ("512m", 512 * 1024 * 1024),
        ("512M", 512 * 1024 * 1024),
        ("2g", 2 * 1024**3),
        ("2GB", 2 * 1024**3),
        ("10kb", 10 * 1024),
        ("1t", 1024**4),
        ("1.5k", 1536),
        (" 64m ", 64 * 1024 * 1024),
        ("100b", 100),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "12x", "m", "1.5"])
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.org", ""])
def test_check_refuses_a_remote_host_without_users(host: str) -> None:
    with pytest.raises(ValueError, match="without authentication"):
        Settings(host=host).check()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_check_accepts_loopback_without_users(host: str) -> None:
    Settings(host=host).check()


def test_check_accepts_a_remote_host_with_users_or_explicit_risk() -> None:
    Settings(host="0.0.0.0", users_file=Path("users.json")).check()
    Settings(host="0.0.0.0", allow_unauthenticated_remote=True).check()


def test_check_refuses_negative_budgets() -> None:
    with pytest.raises(ValueError, match="budgets"):
        Settings(memory_budget=-1).check()
    with pytest.raises(ValueError, match="budgets"):
        Settings(disk_budget=-1).check()


def test_public_host() -> None:
    assert Settings(host="10.0.0.5").public_host == "10.0.0.5"
    assert Settings(host="0.0.0.0", advertise_host="node-1.example").public_host == "node-1.example"
    assert Settings(host="0.0.0.0").public_host == socket.gethostname()


def test_load_defaults() -> None:
    assert load({}, {}) == Settings()


def test_load_port_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTSQL_PORT", "4000")
    loaded = settings_module.load({})
    assert loaded.port == 4000
    assert isinstance(loaded.port, int)


def test_flags_win_over_the_environment() -> None:
    env = {"FLIGHTSQL_PORT": "4000", "FLIGHTSQL_HOST": "0.0.0.0"}
    loaded = load({"port": 5000, "host": None}, env)
    assert loaded.port == 5000
    assert loaded.host == "0.0.0.0"  # a flag left unset does not override


def test_load_converts_each_type_from_the_environment() -> None:
    env = {
        "FLIGHTSQL_MEMORY_BUDGET": "1g",
        "FLIGHTSQL_DISK_BUDGET": "2048",
        "FLIGHTSQL_DEMO": "yes",
        "FLIGHTSQL_ALLOW_UNAUTHENTICATED_REMOTE": "0",
        "FLIGHTSQL_RESULT_TTL": "2.5",
        "FLIGHTSQL_USERS_FILE": "/etc/flightsql/users.json",
        "FLIGHTSQL_ADVERTISE_HOST": "node-7",
        "FLIGHTSQL_LOG_LEVEL": "DEBUG",
        "FLIGHTSQL_CONF": "ignored",
        "OTHER_PORT": "1",
    }
    loaded = load({}, env)
    assert loaded.memory_budget == 1 << 30
    assert loaded.disk_budget == 2048
    assert loaded.demo is True
    assert loaded.allow_unauthenticated_remote is False
    assert loaded.result_ttl == 2.5
    assert loaded.users_file == Path("/etc/flightsql/users.json")
    assert loaded.advertise_host == "node-7"
    assert loaded.log_level == "DEBUG"
    assert loaded.conf == ()
    assert loaded.port == Settings().port


def test_loaded_settings_are_checked_by_check() -> None:
    loaded = load({}, {"FLIGHTSQL_HOST": "0.0.0.0"})
    with pytest.raises(ValueError):
        loaded.check()
    load({}, {"FLIGHTSQL_HOST": "0.0.0.0", "FLIGHTSQL_USERS_FILE": "u.json"}).check()
