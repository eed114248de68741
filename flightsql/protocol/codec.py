"""The Flight SQL wire format: bytes to :mod:`flightsql.protocol.commands` and back.

This module is the only place that handles ``google.protobuf.Any`` and the only place
that decodes what a client sends inside a Flight call.  Clients send Flight SQL commands
as an Any-packed protobuf message in ``FlightDescriptor.cmd`` (and in tickets), and Flight
SQL action bodies the same way; the generic Flight actions (``CancelFlightInfo``, the
session actions, ...) carry a plain serialized Flight message instead.  Everything here
turns those bytes into frozen dataclasses, and back, so that handlers never see protobuf.

Decoding is strict where a mistake is certain (not an Any, empty or unknown
type URL, bytes that do not parse, a known field sent with the wrong wire type,
an enum value outside the specification) and lenient where the specification
asks for forward compatibility (unknown field numbers are ignored).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any as _AnyType
from typing import TypeVar

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from flightmanager.flight import Flight_pb2 as fpb
from flightsql.errors import InvalidArgument, Unimplemented
from flightsql.protocol import FlightSql_pb2 as pb
from flightsql.protocol.commands import (
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
)

TYPE_URL_PREFIX = "type.googleapis.com/"

_M = TypeVar("_M", bound=Message)
_E = TypeVar("_E", bound=int)  # a protobuf enum


# --------------------------------------------------------------------------- wire helpers


def type_url_of(message_cls: type[Message]) -> str:
    """The Any type URL of a protobuf message class."""
    return TYPE_URL_PREFIX + message_cls.DESCRIPTOR.full_name


def pack_message(message: Message) -> bytes:
    """Serialize ``message`` wrapped in a ``google.protobuf.Any``."""
    wrapper = any_pb2.Any(type_url=type_url_of(type(message)), value=message.SerializeToString())
    return wrapper.SerializeToString()


def parse_message(message_cls: type[_M], data: bytes) -> _M:
    """Parse ``data`` as ``message_cls``; bytes of another message raise InvalidArgument.

    A field number the message knows, sent with a different wire type, is a sure
    sign of the wrong message; unknown field numbers are ignored, as proto3 asks.
    """
    message = message_cls()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidArgument(f"malformed {message_cls.DESCRIPTOR.name} message") from exc
    _reject_mistyped_fields(message, message_cls.DESCRIPTOR.name)
    return message


def _reject_mistyped_fields(message: Message, name: str) -> None:
    """Raise InvalidArgument if a known field arrived with the wrong wire type."""
    known = message.DESCRIPTOR.fields_by_number
    unknown_fields = UnknownFieldSet(message)
    for index in range(len(unknown_fields)):
        unknown = unknown_fields[index]
        if unknown.field_number in known:
            raise InvalidArgument(
                f"malformed {name} message: field {unknown.field_number} has the wrong wire type"
            )
    for descriptor, value in message.ListFields():
        if descriptor.message_type is not None and not descriptor.is_repeated:
            _reject_mistyped_fields(value, name)


def unpack_message(message_cls: type[_M], data: bytes, what: str) -> _M:
    """Parse an Any-packed ``message_cls``; ``what`` names the payload in errors."""
    wrapper = _parse_any(data, what)
    expected = type_url_of(message_cls)
    if wrapper.type_url != expected:
        raise InvalidArgument(
            f"{what} must be a {message_cls.DESCRIPTOR.name}, got type URL {wrapper.type_url!r}"
        )
    return parse_message(message_cls, wrapper.value)


def _parse_any(data: bytes, what: str) -> any_pb2.Any:
    wrapper = any_pb2.Any()
    try:
        wrapper.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidArgument(f"{what} is not a serialized google.protobuf.Any") from exc
    if not wrapper.type_url:
        raise InvalidArgument(f"{what} is a google.protobuf.Any with an empty type URL")
    return wrapper


def _opt(message: Message, field_name: str) -> _AnyType:
    """The value of an ``optional`` field, or None when it is unset."""
    return getattr(message, field_name) if message.HasField(field_name) else None


def _enum_name(names: Mapping[_E, str], number: int, what: str) -> str:
    for candidate, name in names.items():
        if candidate == number:
            return name
    raise InvalidArgument(f"{what} has an unknown value {number}")


def _enum_number(names: Mapping[_E, str], name: str, what: str) -> _E:
    for number, candidate in names.items():
        if candidate == name:
            return number
    raise ValueError(f"{what} must be one of {sorted(names.values())}, not {name!r}")


_Ingest = pb.CommandStatementIngest.TableDefinitionOptions
_IF_NOT_EXIST = {
    _Ingest.TABLE_NOT_EXIST_OPTION_UNSPECIFIED: "unspecified",
    _Ingest.TABLE_NOT_EXIST_OPTION_CREATE: "create",
    _Ingest.TABLE_NOT_EXIST_OPTION_FAIL: "fail",
}
_IF_EXISTS = {
    _Ingest.TABLE_EXISTS_OPTION_UNSPECIFIED: "unspecified",
    _Ingest.TABLE_EXISTS_OPTION_FAIL: "fail",
    _Ingest.TABLE_EXISTS_OPTION_APPEND: "append",
    _Ingest.TABLE_EXISTS_OPTION_REPLACE: "replace",
}
_END_TRANSACTION = {
    pb.ActionEndTransactionRequest.END_TRANSACTION_UNSPECIFIED: "unspecified",
    pb.ActionEndTransactionRequest.END_TRANSACTION_COMMIT: "commit",
    pb.ActionEndTransactionRequest.END_TRANSACTION_ROLLBACK: "rollback",
}
_END_SAVEPOINT = {
    pb.ActionEndSavepointRequest.END_SAVEPOINT_UNSPECIFIED: "unspecified",
    pb.ActionEndSavepointRequest.END_SAVEPOINT_RELEASE: "release",
    pb.ActionEndSavepointRequest.END_SAVEPOINT_ROLLBACK: "rollback",
}


@dataclass(frozen=True, slots=True)
class _Codec:
    """How one dataclass maps onto one protobuf message.

    Fields map by name unless ``renames`` says otherwise (dataclass field -> proto
    field); ``optional`` proto fields become None when unset, repeated ones tuples,
    and enum fields listed in ``enums`` travel as names.  ``custom_decode`` and
    ``custom_encode`` replace the generic mapping for messages with nested parts.
    """

    cls: type
    message_cls: type[Message]
    renames: Mapping[str, str] = field(default_factory=dict)
    enums: Mapping[str, Mapping[_AnyType, str]] = field(default_factory=dict)
    custom_decode: Callable[[_AnyType], _AnyType] | None = None
    custom_encode: Callable[[_AnyType], Message] | None = None

    def decode(self, message: _AnyType) -> _AnyType:
        """Build the dataclass from a parsed message."""
        if self.custom_decode is not None:
            return self.custom_decode(message)
        values: dict[str, object] = {}
        for item in fields(self.cls):
            proto_name = self.renames.get(item.name, item.name)
            descriptor = self.message_cls.DESCRIPTOR.fields_by_name[proto_name]
            value = getattr(message, proto_name)
            if descriptor.is_repeated:
                value = tuple(value)
            elif descriptor.has_presence and not message.HasField(proto_name):
                value = None
            elif item.name in self.enums:
                what = f"{self.message_cls.DESCRIPTOR.name}.{proto_name}"
                value = _enum_name(self.enums[item.name], value, what)
            values[item.name] = value
        return self.cls(**values)

    def encode(self, value: _AnyType) -> Message:
        """Build the protobuf message from the dataclass."""
        if self.custom_encode is not None:
            return self.custom_encode(value)
        values: dict[str, object] = {}
        for item in fields(self.cls):
            proto_name = self.renames.get(item.name, item.name)
            item_value = getattr(value, item.name)
            if item.name in self.enums:
                what = f"{self.message_cls.DESCRIPTOR.name}.{proto_name}"
                item_value = _enum_number(self.enums[item.name], item_value, what)
            values[proto_name] = item_value
        return self.message_cls(**values)


def _decode_ingest(m: _AnyType) -> CommandStatementIngest:
    options = m.table_definition_options
    return CommandStatementIngest(
        table=m.table,
        schema=_opt(m, "schema"),
        catalog=_opt(m, "catalog"),
        temporary=m.temporary,
        if_not_exist=_enum_name(
            _IF_NOT_EXIST, options.if_not_exist, "CommandStatementIngest.if_not_exist"
        ),
        if_exists=_enum_name(_IF_EXISTS, options.if_exists, "CommandStatementIngest.if_exists"),
        transaction_id=_opt(m, "transaction_id"),
        options=dict(m.options),
    )


def _encode_ingest(c: CommandStatementIngest) -> Message:
    return pb.CommandStatementIngest(
        table_definition_options=_Ingest(
            if_not_exist=_enum_number(_IF_NOT_EXIST, c.if_not_exist, "if_not_exist"),
            if_exists=_enum_number(_IF_EXISTS, c.if_exists, "if_exists"),
        ),
        table=c.table,
        schema=c.schema,
        catalog=c.catalog,
        temporary=c.temporary,
        transaction_id=c.transaction_id,
        options=c.options,
    )


_HANDLE = {"handle": "prepared_statement_handle"}

_COMMAND_CODECS: dict[type, _Codec] = {
    codec.cls: codec
    for codec in (
        _Codec(CommandStatementQuery, pb.CommandStatementQuery),
        _Codec(CommandStatementUpdate, pb.CommandStatementUpdate),
        _Codec(
            CommandStatementIngest,
            pb.CommandStatementIngest,
            custom_decode=_decode_ingest,
            custom_encode=_encode_ingest,
        ),
        _Codec(
            CommandStatementSubstraitPlan,
            pb.CommandStatementSubstraitPlan,
            custom_decode=lambda m: CommandStatementSubstraitPlan(m.plan.plan, m.plan.version),
            custom_encode=lambda c: pb.CommandStatementSubstraitPlan(
                plan=pb.SubstraitPlan(plan=c.plan, version=c.version)
            ),
        ),
        _Codec(CommandPreparedStatementQuery, pb.CommandPreparedStatementQuery, _HANDLE),
        _Codec(CommandPreparedStatementUpdate, pb.CommandPreparedStatementUpdate, _HANDLE),
        _Codec(TicketStatementQuery, pb.TicketStatementQuery, {"handle": "statement_handle"}),
        _Codec(CommandGetCatalogs, pb.CommandGetCatalogs),
        _Codec(CommandGetDbSchemas, pb.CommandGetDbSchemas),
        _Codec(CommandGetTables, pb.CommandGetTables),
        _Codec(CommandGetTableTypes, pb.CommandGetTableTypes),
        _Codec(CommandGetSqlInfo, pb.CommandGetSqlInfo),
        _Codec(CommandGetXdbcTypeInfo, pb.CommandGetXdbcTypeInfo),
        _Codec(CommandGetPrimaryKeys, pb.CommandGetPrimaryKeys),
        _Codec(CommandGetExportedKeys, pb.CommandGetExportedKeys),
        _Codec(CommandGetImportedKeys, pb.CommandGetImportedKeys),
        _Codec(CommandGetCrossReference, pb.CommandGetCrossReference),
    )
}

# Flight SQL actions, keyed by Action.type; their bodies are Any-packed.
_SQL_ACTION_CODECS: dict[str, _Codec] = {
    codec.cls.action_type: codec  # type: ignore[attr-defined]
    for codec in (
        _Codec(CreatePreparedStatement, pb.ActionCreatePreparedStatementRequest),
        _Codec(ClosePreparedStatement, pb.ActionClosePreparedStatementRequest, _HANDLE),
        _Codec(
            CreatePreparedSubstraitPlan,
            pb.ActionCreatePreparedSubstraitPlanRequest,
            custom_decode=lambda m: CreatePreparedSubstraitPlan(m.plan.plan),
            custom_encode=lambda r: pb.ActionCreatePreparedSubstraitPlanRequest(
                plan=pb.SubstraitPlan(plan=r.plan)
            ),
        ),
        _Codec(BeginTransaction, pb.ActionBeginTransactionRequest),
        _Codec(EndTransaction, pb.ActionEndTransactionRequest, enums={"action": _END_TRANSACTION}),
        _Codec(BeginSavepoint, pb.ActionBeginSavepointRequest),
        _Codec(EndSavepoint, pb.ActionEndSavepointRequest, enums={"action": _END_SAVEPOINT}),
        _Codec(
            CancelQuery,
            pb.ActionCancelQueryRequest,
            custom_decode=lambda m: CancelQuery(m.info, _tickets(parse_message(fpb.FlightInfo, m.info))),
            custom_encode=lambda r: pb.ActionCancelQueryRequest(info=r.info),
        ),
    )
}

_COMMAND_DECODERS: dict[str, _Codec] = {
    type_url_of(codec.message_cls): codec for codec in _COMMAND_CODECS.values()
}


# --------------------------------------------------------------------------- session values


def session_value_to_pb(value: SessionValue) -> fpb.SessionOptionValue:
    """A ``SessionOptionValue`` holding ``value`` (None leaves the oneof unset)."""
    if value is None:
        return fpb.SessionOptionValue()
    if isinstance(value, bool):  # before int: bool is an int subclass
        return fpb.SessionOptionValue(bool_value=value)
    if isinstance(value, int):
        return fpb.SessionOptionValue(int64_value=value)
    if isinstance(value, float):
        return fpb.SessionOptionValue(double_value=value)
    if isinstance(value, str):
        return fpb.SessionOptionValue(string_value=value)
    if isinstance(value, (tuple, list)) and all(isinstance(item, str) for item in value):
        return fpb.SessionOptionValue(
            string_list_value=fpb.SessionOptionValue.StringListValue(values=list(value))
        )
    raise TypeError(f"unsupported session option value {value!r}")


def session_value_from_pb(message: _AnyType) -> SessionValue:
    """The Python value of a ``SessionOptionValue``; None when no value is set."""
    kind = message.WhichOneof("option_value")
    if kind is None:
        return None
    if kind == "string_list_value":
        return tuple(message.string_list_value.values)
    value: SessionValue = getattr(message, kind)
    return value


# --------------------------------------------------------------------------- Flight actions


def _decode_cancel_flight_info(body: bytes) -> CancelFlightInfo:

    request = parse_message(fpb.CancelFlightInfoRequest, body)
    if not request.HasField("info"):
        raise InvalidArgument("CancelFlightInfoRequest carries no FlightInfo")
    return CancelFlightInfo(request.info.SerializeToString(), _tickets(request.info))


def _tickets(info: fpb.FlightInfo) -> tuple[bytes, ...]:
    return tuple(endpoint.ticket.ticket for endpoint in info.endpoint)


def _decode_renew_flight_endpoint(body: bytes) -> RenewFlightEndpoint:

    request = parse_message(fpb.RenewFlightEndpointRequest, body)
    if not request.HasField("endpoint"):
        raise InvalidArgument("RenewFlightEndpointRequest carries no FlightEndpoint")
    return RenewFlightEndpoint(request.endpoint.SerializeToString(), request.endpoint.ticket.ticket)


def _decode_set_session_options(body: bytes) -> SetSessionOptions:

    request = parse_message(fpb.SetSessionOptionsRequest, body)
    return SetSessionOptions(
        {key: session_value_from_pb(value) for key, value in request.session_options.items()}
    )


def _decode_get_session_options(body: bytes) -> GetSessionOptions:

    parse_message(fpb.GetSessionOptionsRequest, body)
    return GetSessionOptions()


def _decode_close_session(body: bytes) -> CloseSession:

    parse_message(fpb.CloseSessionRequest, body)
    return CloseSession()


# Generic Flight actions, keyed by Action.type; their bodies are plain messages.
_FLIGHT_ACTION_DECODERS: dict[str, Callable[[bytes], ActionRequest]] = {
    "CancelFlightInfo": _decode_cancel_flight_info,
    "RenewFlightEndpoint": _decode_renew_flight_endpoint,
    "SetSessionOptions": _decode_set_session_options,
    "GetSessionOptions": _decode_get_session_options,
    "CloseSession": _decode_close_session,
}


def _encode_flight_action(request: ActionRequest) -> bytes:

    message: Message
    if isinstance(request, CancelFlightInfo):
        message = fpb.CancelFlightInfoRequest(info=fpb.FlightInfo.FromString(request.info))
    elif isinstance(request, RenewFlightEndpoint):
        message = fpb.RenewFlightEndpointRequest(
            endpoint=fpb.FlightEndpoint.FromString(request.endpoint)
        )
    elif isinstance(request, SetSessionOptions):
        message = fpb.SetSessionOptionsRequest()
        for key, value in request.options.items():
            message.session_options[key].CopyFrom(session_value_to_pb(value))
    elif isinstance(request, GetSessionOptions):
        message = fpb.GetSessionOptionsRequest()
    elif isinstance(request, CloseSession):
        message = fpb.CloseSessionRequest()
    else:
        raise TypeError(f"not an action request: {request!r}")
    return message.SerializeToString()


# --------------------------------------------------------------------------- public API


def decode_command(any_bytes: bytes) -> Command:
    """Decode an Any-packed Flight SQL command (descriptor ``cmd`` or ticket)."""
    wrapper = _parse_any(any_bytes, "Flight SQL command")
    codec = _COMMAND_DECODERS.get(wrapper.type_url)
    if codec is None:
        raise Unimplemented(f"unsupported Flight SQL command {wrapper.type_url!r}")
    command: Command = codec.decode(parse_message(codec.message_cls, wrapper.value))
    return command


def descriptor_command(descriptor: fpb.FlightDescriptor | bytes) -> Command:
    """The Flight SQL command of a FlightDescriptor (or of its serialized form, as DoPut's
    first message carries it); only command descriptors name one."""
    if isinstance(descriptor, bytes):
        descriptor = parse_message(fpb.FlightDescriptor, descriptor)
    if descriptor.type != fpb.FlightDescriptor.CMD:
        raise InvalidArgument("only command descriptors (CMD) are supported, not paths")
    return decode_command(descriptor.cmd)


def encode_command(command: Command) -> bytes:
    """Serialize a command as an Any-packed protobuf message."""
    codec = _COMMAND_CODECS.get(type(command))
    if codec is None:
        raise TypeError(f"not a Flight SQL command: {command!r}")
    return pack_message(codec.encode(command))


def decode_action(action_type: str, body: bytes) -> ActionRequest:
    """Decode the body of a DoAction request of type ``action_type``."""
    codec = _SQL_ACTION_CODECS.get(action_type)
    if codec is not None:
        message_cls = codec.message_cls
        if not body and not message_cls.DESCRIPTOR.fields:
            # Some clients send nothing at all for a request without fields.
            request: ActionRequest = codec.decode(message_cls())
            return request
        what = f"body of action {action_type!r}"
        request = codec.decode(unpack_message(message_cls, body, what))
        return request
    decoder = _FLIGHT_ACTION_DECODERS.get(action_type)
    if decoder is None:
        raise Unimplemented(f"unsupported action {action_type!r}")
    return decoder(body)


def encode_action_body(request: ActionRequest) -> bytes:
    """Serialize an action request as its DoAction body.

    Flight SQL actions are Any-packed; the generic Flight actions (CancelFlightInfo,
    RenewFlightEndpoint and the session actions) are plain serialized messages.
    """
    codec = _SQL_ACTION_CODECS.get(getattr(request, "action_type", ""))
    if codec is not None:
        return pack_message(codec.encode(request))
    return _encode_flight_action(request)


def message_name(value: Command | ActionRequest) -> str:
    """The protobuf message name behind a command or action request, for errors."""
    codec = _COMMAND_CODECS.get(type(value)) or _SQL_ACTION_CODECS.get(
        getattr(value, "action_type", "")
    )
    if codec is not None:
        return codec.message_cls.DESCRIPTOR.name
    return f"{type(value).__name__}Request"
