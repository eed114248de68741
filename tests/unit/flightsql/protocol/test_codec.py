"""Flight SQL commands, actions and results: round trips, errors and pinned wire bytes.

The pinned encodings below are written out by hand from the field numbers of the
specification (tag byte = field_number << 3 | wire_type), so a wrong field number
or type in FlightSql.proto fails here even though the round trips still pass.
"""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2

from flightmanager.flight import Flight_pb2 as fpb
from flightsql.errors import InvalidArgument, Unimplemented
from flightsql.protocol import (
    ActionRequest,
    BeginSavepoint,
    BeginTransaction,
    CancelFlightInfo,
    CancelQuery,
    ClosePreparedStatement,
    CloseSession,
    Command,
    CommandGetCatalogs,
    CommandGetCrossReference,
    CommandGetDbSchemas,
    CommandGetExportedKeys,
    CommandGetImportedKeys,
    CommandGetPrimaryKeys,
    CommandGetSqlInfo,
    CommandGetTables,
    CommandGetTableTypes,
    CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate,
    CommandStatementIngest,
    CommandStatementQuery,
    CommandStatementSubstraitPlan,
    CommandStatementUpdate,
    CreatePreparedStatement,
    CreatePreparedSubstraitPlan,
    EndSavepoint,
    EndTransaction,
    GetSessionOptions,
    RenewFlightEndpoint,
    SessionValue,
    SetSessionOptions,
    TicketStatementQuery,
    cancel_flight_info_result,
    cancel_query_result,
    close_session_result,
    create_prepared_statement_result,
    decode_action,
    decode_command,
    decode_create_prepared_statement_result,
    decode_do_put_prepared_statement_result,
    decode_do_put_update_result,
    do_put_prepared_statement_result,
    do_put_update_result,
    encode_action_body,
    encode_command,
    get_session_options_result,
    message_name,
    set_session_options_result,
)
from flightsql.protocol.results import begin_savepoint_result, begin_transaction_result

PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."


def _len(n: int) -> bytes:
    """A varint for the small lengths used below."""
    assert n < 128
    return bytes([n])


def _any(message: str, inner: bytes) -> bytes:
    """Any{type_url = 1 (LEN), value = 2 (LEN)} built by hand; proto3 omits an empty value."""
    url = (PREFIX + message).encode()
    value = b"\x12" + _len(len(inner)) + inner if inner else b""
    return b"\x0a" + _len(len(url)) + url + value


COMMANDS: list[Command] = [
    CommandStatementQuery("SELECT 1"),
    CommandStatementQuery("SELECT 1", transaction_id=b"tx"),
    CommandStatementQuery("", transaction_id=b""),
    CommandStatementUpdate("DELETE FROM t"),
    CommandStatementUpdate("DELETE FROM t", transaction_id=b"\x00\xff"),
    CommandStatementIngest("t"),
    CommandStatementIngest(
        "t",
        schema="s",
        catalog="c",
        temporary=True,
        if_not_exist="create",
        if_exists="replace",
        transaction_id=b"tx",
        options={"k": "v", "compression": "zstd"},
    ),
    CommandStatementIngest("t", if_not_exist="fail", if_exists="fail"),
    CommandStatementIngest("t", if_exists="append"),
    CommandStatementSubstraitPlan(b"\x01\x02plan", "0.12.0"),
    CommandPreparedStatementQuery(b"handle-1"),
    CommandPreparedStatementUpdate(b"handle-2"),
    TicketStatementQuery(b"\x00ticket\xff"),
    CommandGetCatalogs(),
    CommandGetDbSchemas(),
    CommandGetDbSchemas("spark_catalog", "def%"),
    CommandGetDbSchemas("", ""),
    CommandGetTables(),
    CommandGetTables("c", "s_", "t%", ("TABLE", "VIEW"), True),
    CommandGetTableTypes(),
    CommandGetSqlInfo(),
    CommandGetSqlInfo((0, 1, 500, 576, 10_000)),
    CommandGetXdbcTypeInfo(),
    CommandGetXdbcTypeInfo(-5),
    CommandGetXdbcTypeInfo(0),
    CommandGetPrimaryKeys(None, None, "t"),
    CommandGetPrimaryKeys("c", "s", "t"),
    CommandGetExportedKeys("", None, "t"),
    CommandGetImportedKeys(None, "", "t"),
    CommandGetCrossReference("pc", "ps", "pt", "fc", "fs", "ft"),
    CommandGetCrossReference(None, None, "pt", None, None, "ft"),
]

_INFO = fpb.FlightInfo(
    endpoint=[fpb.FlightEndpoint(ticket=fpb.Ticket(ticket=t)) for t in (b"t1", b"t2")]
).SerializeToString()

ACTIONS: list[ActionRequest] = [
    CreatePreparedStatement("SELECT ?"),
    CreatePreparedStatement("SELECT ?", transaction_id=b"tx"),
    ClosePreparedStatement(b"handle"),
    CreatePreparedSubstraitPlan(b"plan-bytes"),
    BeginTransaction(),
    EndTransaction(b"tx", "commit"),
    EndTransaction(b"tx", "rollback"),
    EndTransaction(b"tx", "unspecified"),
    BeginSavepoint(b"tx", "sp1"),
    EndSavepoint(b"sp", "release"),
    EndSavepoint(b"sp", "rollback"),
    # decoding names the tickets of the FlightInfo or endpoint, so that handlers need no protobuf
    CancelQuery(_INFO, (b"t1", b"t2")),
    CancelFlightInfo(fpb.FlightInfo(total_records=3, ordered=True).SerializeToString()),
    CancelFlightInfo(_INFO, (b"t1", b"t2")),
    RenewFlightEndpoint(
        fpb.FlightEndpoint(
            ticket=fpb.Ticket(ticket=b"t"), location=[fpb.Location(uri="grpc://h:1")]
        ).SerializeToString(),
        b"t",
    ),
    SetSessionOptions({}),
    SetSessionOptions(
        {
            "catalog": "spark_catalog",
            "flag": True,
            "off": False,
            "limit": -42,
            "ratio": 0.5,
            "path": ("a", "b"),
            "empty_list": (),
            "unset": None,
        }
    ),
    GetSessionOptions(),
    CloseSession(),
]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("command", COMMANDS, ids=repr)
def test_command_round_trip(command: Command) -> None:
    assert decode_command(encode_command(command)) == command


@pytest.mark.parametrize("command", COMMANDS, ids=repr)
def test_command_type_url_is_the_spec_name(command: Command) -> None:
    wrapper = any_pb2.Any.FromString(encode_command(command))
    assert wrapper.type_url == PREFIX + type(command).name
    assert message_name(command) == type(command).name


def test_statement_query_type_url_literal() -> None:
    wrapper = any_pb2.Any.FromString(encode_command(CommandStatementQuery("SELECT 1")))
    assert wrapper.type_url == (
        "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    )


@pytest.mark.parametrize("request_", ACTIONS, ids=repr)
def test_action_round_trip(request_: ActionRequest) -> None:
    body = encode_action_body(request_)
    assert decode_action(type(request_).action_type, body) == request_


@pytest.mark.parametrize(
    ("action_type", "message"),
    [
        ("CreatePreparedStatement", "ActionCreatePreparedStatementRequest"),
        ("ClosePreparedStatement", "ActionClosePreparedStatementRequest"),
        ("CreatePreparedSubstraitPlan", "ActionCreatePreparedSubstraitPlanRequest"),
        ("BeginTransaction", "ActionBeginTransactionRequest"),
        ("EndTransaction", "ActionEndTransactionRequest"),
        ("BeginSavepoint", "ActionBeginSavepointRequest"),
        ("EndSavepoint", "ActionEndSavepointRequest"),
        ("CancelQuery", "ActionCancelQueryRequest"),
    ],
)
def test_flight_sql_action_bodies_are_any_packed(action_type: str, message: str) -> None:
    request = next(r for r in ACTIONS if type(r).action_type == action_type)
    wrapper = any_pb2.Any.FromString(encode_action_body(request))
    assert wrapper.type_url == PREFIX + message
    assert message_name(request) == message


def test_begin_savepoint_name_is_a_field() -> None:
    request = decode_action("BeginSavepoint", encode_action_body(BeginSavepoint(b"tx", "sp")))
    assert isinstance(request, BeginSavepoint)
    assert request.name == "sp"
    assert message_name(request) == "ActionBeginSavepointRequest"


def test_cancel_flight_info_returns_the_serialized_flight_info() -> None:
    info = fpb.FlightInfo(total_records=7, app_metadata=b"m")
    body = fpb.CancelFlightInfoRequest(info=info).SerializeToString()
    request = decode_action("CancelFlightInfo", body)
    assert isinstance(request, CancelFlightInfo)
    assert fpb.FlightInfo.FromString(request.info) == info


def test_begin_transaction_accepts_an_empty_body() -> None:
    assert decode_action("BeginTransaction", b"") == BeginTransaction()


# --------------------------------------------------------------------------- errors


def test_unknown_type_url_is_unimplemented() -> None:
    url = "type.googleapis.com/arrow.flight.protocol.sql.CommandNoSuchThing"
    body = any_pb2.Any(type_url=url, value=b"").SerializeToString()
    with pytest.raises(Unimplemented) as caught:
        decode_command(body)
    assert caught.value.message == f"unsupported Flight SQL command {url!r}"


def test_action_message_as_command_is_unimplemented() -> None:
    with pytest.raises(Unimplemented, match="ActionCreatePreparedStatementRequest"):
        decode_command(encode_action_body(CreatePreparedStatement("SELECT 1")))


@pytest.mark.parametrize("garbage", [b"hello", b"\xff\xff\xff", b"garbage!", b"\x0a\x05ab"])
def test_garbage_bytes_are_invalid_argument(garbage: bytes) -> None:
    with pytest.raises(InvalidArgument, match="google.protobuf.Any"):
        decode_command(garbage)


@pytest.mark.parametrize("body", [b"", any_pb2.Any(value=b"\x0a\x01x").SerializeToString()])
def test_empty_type_url_is_invalid_argument(body: bytes) -> None:
    with pytest.raises(InvalidArgument, match="empty type URL"):
        decode_command(body)


@pytest.mark.parametrize(
    ("message", "inner"),
    [
        # A varint where the bytes handle (field 1) should be: a DoPutUpdateResult.
        ("CommandPreparedStatementQuery", b"\x08\x05"),
        # Field 1 of CommandStatementQuery is a string; these bytes are not UTF-8.
        ("CommandStatementQuery", b"\x0a\x02\xff\xfe"),
        # Truncated: the length says 5 bytes, 2 follow.
        ("CommandGetTables", b"\x0a\x05ab"),
        # include_schema (field 5) sent as a length-delimited field.
        ("CommandGetTables", b"\x2a\x01x"),
        # Nested: TableDefinitionOptions.if_exists (field 2) as a string.
        ("CommandStatementIngest", b"\x0a\x03\x12\x01x"),
    ],
)
def test_wrong_message_in_any_is_invalid_argument(message: str, inner: bytes) -> None:
    with pytest.raises(InvalidArgument, match=message):
        decode_command(_any(message, inner))


def test_unknown_field_numbers_are_ignored() -> None:
    # Field 15 (varint) is not part of CommandStatementQuery: a newer client's field.
    inner = b"\x0a\x01q\x78\x01"
    assert decode_command(_any("CommandStatementQuery", inner)) == CommandStatementQuery("q")


def test_unknown_enum_values_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="if_exists"):
        decode_command(_any("CommandStatementIngest", b"\x0a\x02\x10\x09\x12\x01t"))
    body = _any("ActionEndTransactionRequest", b"\x0a\x02tx\x10\x07")
    with pytest.raises(InvalidArgument, match="action"):
        decode_action("EndTransaction", body)


def test_unknown_action_is_unimplemented() -> None:
    with pytest.raises(Unimplemented, match="'DropEverything'"):
        decode_action("DropEverything", b"")


def test_action_body_of_the_wrong_message_is_invalid_argument() -> None:
    body = encode_action_body(ClosePreparedStatement(b"h"))
    with pytest.raises(InvalidArgument, match="ActionCreatePreparedStatementRequest"):
        decode_action("CreatePreparedStatement", body)


@pytest.mark.parametrize("body", [b"", b"not an any \xff"])
def test_action_body_that_is_not_an_any_is_invalid_argument(body: bytes) -> None:
    with pytest.raises(InvalidArgument):
        decode_action("ClosePreparedStatement", body)


@pytest.mark.parametrize("action_type", ["CancelFlightInfo", "RenewFlightEndpoint"])
def test_flight_action_without_its_message_is_invalid_argument(action_type: str) -> None:
    with pytest.raises(InvalidArgument):
        decode_action(action_type, b"")


def test_flight_action_with_garbage_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="SetSessionOptionsRequest"):
        decode_action("SetSessionOptions", b"\x0a\x09abc")


def test_encoding_rejects_unknown_enum_names() -> None:
    with pytest.raises(ValueError):
        encode_command(CommandStatementIngest("t", if_exists="merge"))
    with pytest.raises(ValueError):
        encode_action_body(EndTransaction(b"tx", "abort"))


# --------------------------------------------------------------------------- pinned bytes


def test_pinned_statement_query() -> None:
    expected = (
        b"\x0a\x43type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
        b"\x12\x0a\x0a\x08SELECT 1"
    )
    assert encode_command(CommandStatementQuery("SELECT 1")) == expected
    with_tx = _any("CommandStatementQuery", b"\x0a\x01q\x12\x02tx")
    assert encode_command(CommandStatementQuery("q", b"tx")) == with_tx
    # An empty but present transaction id is still sent (the field is optional).
    empty_tx = _any("CommandStatementQuery", b"\x0a\x01q\x12\x00")
    assert encode_command(CommandStatementQuery("q", b"")) == empty_tx
    assert decode_command(empty_tx) == CommandStatementQuery("q", b"")


def test_pinned_get_tables() -> None:
    inner = b"\x0a\x00" + b"\x1a\x02t%" + b"\x22\x05TABLE\x22\x04VIEW" + b"\x28\x01"
    command = CommandGetTables("", None, "t%", ("TABLE", "VIEW"), True)
    assert encode_command(command) == _any("CommandGetTables", inner)
    assert decode_command(_any("CommandGetTables", inner)) == command


def test_pinned_get_sql_info_is_packed() -> None:
    inner = b"\x0a\x03\x00\xf4\x03"  # field 1, packed varints 0 and 500
    assert encode_command(CommandGetSqlInfo((0, 500))) == _any("CommandGetSqlInfo", inner)
    unpacked = b"\x08\x00\x08\xf4\x03"  # the same values, one tag each
    assert decode_command(_any("CommandGetSqlInfo", unpacked)) == CommandGetSqlInfo((0, 500))


def test_pinned_cross_reference() -> None:
    inner = b"\x0a\x01a\x12\x01b\x1a\x01c\x22\x01d\x2a\x01e\x32\x01f"
    command = CommandGetCrossReference("a", "b", "c", "d", "e", "f")
    assert encode_command(command) == _any("CommandGetCrossReference", inner)


def test_pinned_statement_ingest() -> None:
    inner = (
        b"\x0a\x04\x08\x01\x10\x02"  # table_definition_options {create, append}
        b"\x12\x01t"  # table = 2
        b"\x1a\x01s"  # schema = 3
        b"\x22\x01c"  # catalog = 4
        b"\x28\x01"  # temporary = 5
        b"\x32\x02tx"  # transaction_id = 6
        b"\xc2\x3e\x06\x0a\x01k\x12\x01v"  # options = 1000 (tag 8002), entry {k: v}
    )
    command = CommandStatementIngest("t", "s", "c", True, "create", "append", b"tx", {"k": "v"})
    assert encode_command(command) == _any("CommandStatementIngest", inner)
    assert decode_command(_any("CommandStatementIngest", inner)) == command


def test_pinned_prepared_statement_and_ticket() -> None:
    assert encode_command(CommandPreparedStatementQuery(b"h")) == _any(
        "CommandPreparedStatementQuery", b"\x0a\x01h"
    )
    assert encode_command(TicketStatementQuery(b"h")) == _any("TicketStatementQuery", b"\x0a\x01h")
    assert encode_command(CommandStatementSubstraitPlan(b"p", "1")) == _any(
        "CommandStatementSubstraitPlan", b"\x0a\x06\x0a\x01p\x12\x011"
    )


def test_pinned_action_bodies() -> None:
    assert encode_action_body(EndTransaction(b"tx", "rollback")) == _any(
        "ActionEndTransactionRequest", b"\x0a\x02tx\x10\x02"
    )
    assert encode_action_body(EndSavepoint(b"sp", "release")) == _any(
        "ActionEndSavepointRequest", b"\x0a\x02sp\x10\x01"
    )
    assert encode_action_body(BeginSavepoint(b"tx", "n")) == _any(
        "ActionBeginSavepointRequest", b"\x0a\x02tx\x12\x01n"
    )
    assert encode_action_body(CreatePreparedStatement("q", b"t")) == _any(
        "ActionCreatePreparedStatementRequest", b"\x0a\x01q\x12\x01t"
    )


def test_pinned_session_option_int_is_sfixed64() -> None:
    value = b"\x19\x07\x00\x00\x00\x00\x00\x00\x00"  # int64_value (field 3) = 7, fixed 64-bit
    entry = b"\x0a\x01n\x12" + _len(len(value)) + value
    body = b"\x0a" + _len(len(entry)) + entry
    assert decode_action("SetSessionOptions", body) == SetSessionOptions({"n": 7})
    assert encode_action_body(SetSessionOptions({"n": 7})) == body


# --------------------------------------------------------------------------- results


def test_pinned_do_put_results() -> None:
    assert do_put_update_result(5) == b"\x08\x05"
    assert do_put_update_result(0) == b""
    assert do_put_update_result(-1) == b"\x08" + b"\xff" * 9 + b"\x01"
    assert decode_do_put_update_result(b"\x08\x05") == 5
    assert decode_do_put_update_result(do_put_update_result(-1)) == -1
    assert do_put_prepared_statement_result(None) == b""
    assert do_put_prepared_statement_result(b"") == b"\x0a\x00"
    assert do_put_prepared_statement_result(b"h2") == b"\x0a\x02h2"
    assert decode_do_put_prepared_statement_result(b"") is None
    assert decode_do_put_prepared_statement_result(b"\x0a\x02h2") == b"h2"


def test_create_prepared_statement_result() -> None:
    body = create_prepared_statement_result(b"h", b"S", None, True)
    assert body == _any("ActionCreatePreparedStatementResult", b"\x0a\x01h\x12\x01S\x20\x01")
    assert decode_create_prepared_statement_result(body) == (b"h", b"S", None, True)
    unset = create_prepared_statement_result(b"h", None, b"P", None)
    assert unset == _any("ActionCreatePreparedStatementResult", b"\x0a\x01h\x1a\x01P")
    assert decode_create_prepared_statement_result(unset) == (b"h", None, b"P", None)
    explicit_false = create_prepared_statement_result(b"h", None, None, False)
    assert explicit_false.endswith(b"\x20\x00")
    assert decode_create_prepared_statement_result(explicit_false)[3] is False


def test_transaction_results_are_any_packed() -> None:
    assert begin_transaction_result(b"tx") == _any("ActionBeginTransactionResult", b"\x0a\x02tx")
    assert begin_savepoint_result(b"sp") == _any("ActionBeginSavepointResult", b"\x0a\x02sp")


@pytest.mark.parametrize(
    ("status", "number"),
    [("unspecified", 0), ("cancelled", 1), ("cancelling", 2), ("not_cancellable", 3)],
)
def test_cancel_results(status: str, number: int) -> None:
    inner = b"" if number == 0 else b"\x08" + bytes([number])
    assert cancel_query_result(status) == _any("ActionCancelQueryResult", inner)
    assert cancel_flight_info_result(status) == inner
    assert fpb.CancelFlightInfoResult.FromString(inner).status == number


def test_session_results() -> None:
    assert close_session_result("closed") == b"\x08\x01"
    assert close_session_result("not_closeable") == b"\x08\x03"
    errors = set_session_options_result({"a": "invalid_value"})
    assert errors == b"\x0a\x07\x0a\x01a\x12\x02\x08\x02"
    options: dict[str, SessionValue] = {
        "s": "x",
        "b": False,
        "i": 9,
        "f": 2.5,
        "l": ("p", "q"),
        "u": None,
    }
    parsed = fpb.GetSessionOptionsResult.FromString(get_session_options_result(options))
    assert parsed.session_options["s"].string_value == "x"
    assert parsed.session_options["b"].WhichOneof("option_value") == "bool_value"
    assert parsed.session_options["i"].int64_value == 9
    assert parsed.session_options["f"].double_value == 2.5
    assert list(parsed.session_options["l"].string_list_value.values) == ["p", "q"]
    assert parsed.session_options["u"].WhichOneof("option_value") is None


def test_result_encoders_reject_unknown_names() -> None:
    for encoder in (cancel_query_result, cancel_flight_info_result, close_session_result):
        with pytest.raises(ValueError):
            encoder("done")
    with pytest.raises(ValueError):
        set_session_options_result({"a": "bad"})


def test_cancel_query_of_bytes_that_are_no_flight_info_is_invalid() -> None:
    body = encode_action_body(CancelQuery(b"\xff\xff not a FlightInfo"))
    with pytest.raises(InvalidArgument):
        decode_action("CancelQuery", body)
