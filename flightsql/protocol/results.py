"""Encoders of Flight SQL and Flight action results, so handlers never import protobuf.

Which results are Any-packed follows the specification: the Flight SQL action
results (CreatePreparedStatement, BeginTransaction, BeginSavepoint, CancelQuery)
are; ``DoPutUpdateResult`` and ``DoPutPreparedStatementResult`` travel bare in
``PutResult.app_metadata``; the generic Flight action results (CancelFlightInfo
and the session actions) are plain Flight messages.  The decoders at the end are
for clients, i.e. the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from flightmanager.flight import Flight_pb2 as fpb
from flightsql.protocol import FlightSql_pb2 as pb
from flightsql.protocol.codec import pack_message, parse_message, session_value_to_pb, unpack_message
from flightsql.protocol.commands import SessionValue

_CANCEL_QUERY = {
    "unspecified": pb.ActionCancelQueryResult.CANCEL_RESULT_UNSPECIFIED,
    "cancelled": pb.ActionCancelQueryResult.CANCEL_RESULT_CANCELLED,
    "cancelling": pb.ActionCancelQueryResult.CANCEL_RESULT_CANCELLING,
    "not_cancellable": pb.ActionCancelQueryResult.CANCEL_RESULT_NOT_CANCELLABLE,
}
_CANCEL_STATUS = {
    "unspecified": fpb.CANCEL_STATUS_UNSPECIFIED,
    "cancelled": fpb.CANCEL_STATUS_CANCELLED,
    "cancelling": fpb.CANCEL_STATUS_CANCELLING,
    "not_cancellable": fpb.CANCEL_STATUS_NOT_CANCELLABLE,
}
_SESSION_OPTION_ERROR = {
    "unspecified": fpb.SetSessionOptionsResult.UNSPECIFIED,
    "invalid_name": fpb.SetSessionOptionsResult.INVALID_NAME,
    "invalid_value": fpb.SetSessionOptionsResult.INVALID_VALUE,
    "error": fpb.SetSessionOptionsResult.ERROR,
}
_CLOSE_SESSION_STATUS = {
    "unspecified": fpb.CloseSessionResult.UNSPECIFIED,
    "closed": fpb.CloseSessionResult.CLOSED,
    "closing": fpb.CloseSessionResult.CLOSING,
    "not_closeable": fpb.CloseSessionResult.NOT_CLOSEABLE,
}
_E = TypeVar("_E", bound=int)  # a protobuf enum


def _number(names: Mapping[str, _E], name: str, what: str) -> _E:
    """The enum number of ``name``; an unknown name is a programming error."""
    try:
        return names[name]
    except KeyError:
        raise ValueError(f"{what} must be one of {list(names)}, not {name!r}") from None


# --------------------------------------------------------------------------- Flight SQL


def create_prepared_statement_result(
    handle: bytes,
    dataset_schema: bytes | None,
    parameter_schema: bytes | None,
    is_update: bool | None,
) -> bytes:
    """Any-packed ActionCreatePreparedStatementResult; schemas are IPC-serialized."""
    result = pb.ActionCreatePreparedStatementResult(
        prepared_statement_handle=handle,
        dataset_schema=dataset_schema or b"",
        parameter_schema=parameter_schema or b"",
        is_update=is_update,
    )
    return pack_message(result)


def begin_transaction_result(transaction_id: bytes) -> bytes:
    """Any-packed ActionBeginTransactionResult."""
    return pack_message(pb.ActionBeginTransactionResult(transaction_id=transaction_id))


def begin_savepoint_result(savepoint_id: bytes) -> bytes:
    """Any-packed ActionBeginSavepointResult."""
    return pack_message(pb.ActionBeginSavepointResult(savepoint_id=savepoint_id))


def do_put_update_result(record_count: int) -> bytes:
    """Serialized DoPutUpdateResult (-1 = unknown count), not Any-packed."""
    return pb.DoPutUpdateResult(record_count=record_count).SerializeToString()


def do_put_prepared_statement_result(handle: bytes | None) -> bytes:
    """Serialized DoPutPreparedStatementResult; None keeps the client's handle."""
    return pb.DoPutPreparedStatementResult(prepared_statement_handle=handle).SerializeToString()


def cancel_query_result(status: str) -> bytes:
    """Any-packed ActionCancelQueryResult for the deprecated CancelQuery action."""
    value = _number(_CANCEL_QUERY, status, "cancel status")
    return pack_message(pb.ActionCancelQueryResult(result=value))


# --------------------------------------------------------------------------- Flight


def cancel_flight_info_result(status: str) -> bytes:
    """Serialized Flight CancelFlightInfoResult."""
    value = _number(_CANCEL_STATUS, status, "cancel status")
    return fpb.CancelFlightInfoResult(status=value).SerializeToString()


def renewed_endpoint(endpoint: bytes, expires_at: float) -> bytes:
    """The serialized FlightEndpoint of a RenewFlightEndpoint request, expiring at ``expires_at``."""
    renewed = fpb.FlightEndpoint.FromString(endpoint)
    renewed.expiration_time.CopyFrom(timestamp(expires_at))
    return renewed.SerializeToString()


def timestamp(seconds: float) -> Timestamp:
    """A protobuf Timestamp of a time in seconds since the epoch (an expiration time)."""
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def set_session_options_result(errors: Mapping[str, str]) -> bytes:
    """Serialized SetSessionOptionsResult: option name -> error kind."""
    result = fpb.SetSessionOptionsResult()
    for option, error in errors.items():
        result.errors[option].value = _number(_SESSION_OPTION_ERROR, error, "session option error")
    return result.SerializeToString()


def get_session_options_result(options: Mapping[str, SessionValue]) -> bytes:
    """Serialized GetSessionOptionsResult."""
    result = fpb.GetSessionOptionsResult()
    for option, value in options.items():
        result.session_options[option].CopyFrom(session_value_to_pb(value))
    return result.SerializeToString()


def close_session_result(status: str) -> bytes:
    """Serialized CloseSessionResult."""
    value = _number(_CLOSE_SESSION_STATUS, status, "close session status")
    return fpb.CloseSessionResult(status=value).SerializeToString()


# --------------------------------------------------------------------------- client side


def decode_create_prepared_statement_result(
    body: bytes,
) -> tuple[bytes, bytes | None, bytes | None, bool | None]:
    """(handle, dataset schema, parameter schema, is_update) of a CreatePreparedStatement
    result; empty schemas and an unset is_update come back as None."""
    result = unpack_message(
        pb.ActionCreatePreparedStatementResult, body, "CreatePreparedStatement result"
    )
    return (
        result.prepared_statement_handle,
        result.dataset_schema or None,
        result.parameter_schema or None,
        result.is_update if result.HasField("is_update") else None,
    )


def decode_do_put_update_result(app_metadata: bytes) -> int:
    """Record count of a DoPutUpdateResult taken from PutResult.app_metadata."""
    return parse_message(pb.DoPutUpdateResult, app_metadata).record_count


def decode_do_put_prepared_statement_result(app_metadata: bytes) -> bytes | None:
    """Updated handle of a DoPutPreparedStatementResult, or None when none was sent."""
    result = parse_message(pb.DoPutPreparedStatementResult, app_metadata)
    return (
        result.prepared_statement_handle if result.HasField("prepared_statement_handle") else None
    )
