"""The grpcio Flight service: unimplemented RPCs, and how handler errors become statuses."""

from __future__ import annotations

import logging
import re

import grpc
import pytest

from flightmanager.errors import (
    BudgetExceeded,
    NodeLost,
    NotOwner,
    PushRefused,
    QueryCancelled,
    ResultNotFound,
)
from flightmanager.flight import Flight_pb2 as pb
from flightmanager.flight.service import SERVICE_NAME, FlightService, start_server
from flightmanager.flight.status import status_of

TIMEOUT = 10


def _identity(data: bytes) -> bytes:
    return data


class _Mapped(Exception):
    """An exception the service maps itself, without a code attribute."""


class _Service(FlightService):
    """Offers DoAction, GetFlightInfo and DoGet; each behaves as the request asks."""

    def __init__(self) -> None:
        self.calls = 0

    @staticmethod
    def error_mapper(exc: BaseException):  # type: ignore[no-untyped-def, override]
        if isinstance(exc, _Mapped):
            return grpc.StatusCode.FAILED_PRECONDITION, f"mapped: {exc}"
        return None

    def _behave(self, what: bytes):  # type: ignore[no-untyped-def]
        self.calls += 1
        if what == b"not-found":
            raise ResultNotFound("result 1234 is gone")
        if what == b"exhausted":
            raise BudgetExceeded("disk budget of 10 bytes exceeded")
        if what == b"refused":
            raise PushRefused("push refused: wrong cluster secret")
        if what == b"boom":
            raise RuntimeError("something secret broke")
        if what == b"key":
            return {}["missing"]
        if what == b"mapped":
            raise _Mapped("known failure")
        return None

    def do_action(self, request: pb.Action, context):  # type: ignore[no-untyped-def]
        if request.type == "half":
            yield pb.Result(body=b"first")
            raise ResultNotFound("gone midway")
        self._behave(request.body)
        yield pb.Result(body=b"ok:" + request.body)
        yield pb.Result(body=b"done")

    def get_flight_info(self, request: pb.FlightDescriptor, context):  # type: ignore[no-untyped-def]
        self._behave(request.cmd)
        return pb.FlightInfo(total_records=42)

    def do_get(self, request: pb.Ticket, context):  # type: ignore[no-untyped-def]
        self._behave(request.ticket)
        yield b""


@pytest.fixture(scope="module")
def channel():  # type: ignore[no-untyped-def]
    servers = []
    service = _Service()
    server, port = start_server(service, "127.0.0.1", 0, max_workers=4)
    base_server, base_port = start_server(FlightService(), "127.0.0.1", 0, max_workers=4)
    servers.extend([server, base_server])
    chan = grpc.insecure_channel(f"127.0.0.1:{port}")
    base_chan = grpc.insecure_channel(f"127.0.0.1:{base_port}")
    try:
        yield chan, base_chan
    finally:
        chan.close()
        base_chan.close()
        for s in servers:
            s.stop(None)


def _method(name: str) -> str:
    return f"/{SERVICE_NAME}/{name}"


def _do_action(chan: grpc.Channel, body: bytes, type_: str = "test") -> list[bytes]:
    call = chan.unary_stream(_method("DoAction"), request_serializer=_identity, response_deserializer=_identity)
    action = pb.Action(type=type_, body=body).SerializeToString()
    return [pb.Result.FromString(r).body for r in call(action, timeout=TIMEOUT)]


def _rpc_error(fn, *args) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        fn(*args)
    return info.value


def _assert_no_traceback(details: str) -> None:
    assert "Traceback" not in details
    assert 'File "' not in details
    assert ".py" not in details


# -- unimplemented RPCs -------------------------------------------------------


def _calls(chan: grpc.Channel):  # type: ignore[no-untyped-def]
    def unary_unary(name: str, request: bytes):  # type: ignore[no-untyped-def]
        return lambda: chan.unary_unary(_method(name), _identity, _identity)(request, timeout=TIMEOUT)

    def unary_stream(name: str, request: bytes):  # type: ignore[no-untyped-def]
        return lambda: list(chan.unary_stream(_method(name), _identity, _identity)(request, timeout=TIMEOUT))

    def stream_stream(name: str, requests: list[bytes]):  # type: ignore[no-untyped-def]
        return lambda: list(chan.stream_stream(_method(name), _identity, _identity)(iter(requests), timeout=TIMEOUT))

    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=b"x").SerializeToString()
    return {
        "Handshake": stream_stream("Handshake", [pb.HandshakeRequest(payload=b"hi").SerializeToString()]),
        "ListFlights": unary_stream("ListFlights", pb.Criteria().SerializeToString()),
        "GetFlightInfo": unary_unary("GetFlightInfo", descriptor),
        "PollFlightInfo": unary_unary("PollFlightInfo", descriptor),
        "GetSchema": unary_unary("GetSchema", descriptor),
        "DoGet": unary_stream("DoGet", pb.Ticket(ticket=b"t").SerializeToString()),
        "DoPut": stream_stream("DoPut", [pb.FlightData(data_header=b"").SerializeToString()]),
        "DoExchange": stream_stream("DoExchange", [b""]),
        "DoAction": unary_stream("DoAction", pb.Action(type="anything").SerializeToString()),
    }


@pytest.mark.parametrize(
    "rpc",
    ["Handshake", "ListFlights", "GetFlightInfo", "PollFlightInfo", "GetSchema", "DoGet", "DoPut", "DoExchange", "DoAction"],
)
def test_unimplemented_rpcs_answer_unimplemented(channel, rpc: str) -> None:  # type: ignore[no-untyped-def]
    _, base = channel

    error = _rpc_error(_calls(base)[rpc])

    assert error.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "not supported" in error.details()
    _assert_no_traceback(error.details())


def test_unimplemented_do_action_names_the_action(channel) -> None:  # type: ignore[no-untyped-def]
    _, base = channel
    error = _rpc_error(_do_action, base, b"", "CancelQuery")
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "CancelQuery" in error.details()


def test_rpcs_a_subclass_does_not_override_stay_unimplemented(channel) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel
    for rpc in ("GetSchema", "ListFlights", "DoPut", "Handshake"):
        error = _rpc_error(_calls(chan)[rpc])
        assert error.code() is grpc.StatusCode.UNIMPLEMENTED, rpc


def test_list_actions_answers_an_empty_list(channel) -> None:  # type: ignore[no-untyped-def]
    _, base = channel
    call = base.unary_stream(_method("ListActions"), _identity, _identity)
    assert list(call(pb.Empty().SerializeToString(), timeout=TIMEOUT)) == []


def test_unknown_method_is_unimplemented(channel) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel
    call = chan.unary_unary(_method("NoSuchMethod"), _identity, _identity)
    error = _rpc_error(call, b"", TIMEOUT)
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED


# -- errors with a code --------------------------------------------------------


def test_successful_action_streams_its_results(channel) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel
    assert _do_action(chan, b"fine") == [b"ok:fine", b"done"]


@pytest.mark.parametrize(
    "body, code, message",
    [
        (b"not-found", grpc.StatusCode.NOT_FOUND, "result 1234 is gone"),
        (b"exhausted", grpc.StatusCode.RESOURCE_EXHAUSTED, "disk budget of 10 bytes exceeded"),
        (b"refused", grpc.StatusCode.PERMISSION_DENIED, "push refused: wrong cluster secret"),
    ],
)
def test_exception_with_code_gives_that_status_and_message(channel, body, code, message) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel

    error = _rpc_error(_do_action, chan, body)

    assert error.code() is code
    assert error.details() == message
    _assert_no_traceback(error.details())


def test_exception_with_code_in_a_unary_rpc(channel) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel
    call = chan.unary_unary(_method("GetFlightInfo"), _identity, _identity)
    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=b"not-found").SerializeToString()

    error = _rpc_error(call, descriptor, TIMEOUT)

    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == "result 1234 is gone"


def test_exception_with_code_in_do_get(channel) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel
    call = chan.unary_stream(_method("DoGet"), _identity, _identity)

    error = _rpc_error(lambda: list(call(pb.Ticket(ticket=b"exhausted").SerializeToString(), timeout=TIMEOUT)))

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "disk budget of 10 bytes exceeded"


def test_error_after_some_results_keeps_the_results_and_sends_the_status(channel) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel
    call = chan.unary_stream(_method("DoAction"), _identity, _identity)
    stream = call(pb.Action(type="half").SerializeToString(), timeout=TIMEOUT)

    first = next(stream)
    assert pb.Result.FromString(first).body == b"first"
    with pytest.raises(grpc.RpcError) as info:
        next(stream)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "gone midway"


def test_error_mapper_decides_first(channel) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel
    error = _rpc_error(_do_action, chan, b"mapped")
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "mapped: known failure"


# -- unexpected errors ---------------------------------------------------------


@pytest.mark.parametrize("body", [b"boom", b"key"])
def test_unexpected_exception_gives_internal_without_traceback(channel, body, caplog) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel

    with caplog.at_level(logging.ERROR, logger="flightmanager.flight.service"):
        error = _rpc_error(_do_action, chan, body)

    assert error.code() is grpc.StatusCode.INTERNAL
    assert error.details().startswith("internal error")
    _assert_no_traceback(error.details())
    # the traceback goes to the server's log instead
    assert any(record.exc_info for record in caplog.records)


def test_unexpected_exception_in_a_unary_rpc_gives_internal(channel) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel
    call = chan.unary_unary(_method("GetFlightInfo"), _identity, _identity)
    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=b"boom").SerializeToString()

    error = _rpc_error(call, descriptor, TIMEOUT)

    assert error.code() is grpc.StatusCode.INTERNAL
    _assert_no_traceback(error.details())


def test_server_keeps_serving_after_errors(channel) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel
    for body in (b"boom", b"not-found", b"key", b"exhausted"):
        with pytest.raises(grpc.RpcError):
            _do_action(chan, body)
    assert _do_action(chan, b"still-here") == [b"ok:still-here", b"done"]
    call = chan.unary_unary(_method("GetFlightInfo"), _identity, _identity)
    reply = call(pb.FlightDescriptor(cmd=b"fine").SerializeToString(), timeout=TIMEOUT)
    assert pb.FlightInfo.FromString(reply).total_records == 42


def test_many_failing_calls_do_not_exhaust_the_workers(channel) -> None:  # type: ignore[no-untyped-def]
    chan, _ = channel
    for _ in range(20):  # more calls than the 4 worker threads
        with pytest.raises(grpc.RpcError):
            _do_action(chan, b"boom")
    assert _do_action(chan, b"fine") == [b"ok:fine", b"done"]


# -- status_of ------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, code",
    [
        (ResultNotFound("a"), grpc.StatusCode.NOT_FOUND),
        (QueryCancelled("b"), grpc.StatusCode.CANCELLED),
        (NotOwner("c"), grpc.StatusCode.PERMISSION_DENIED),
        (BudgetExceeded("d"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (NodeLost("e"), grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_status_of_errors_with_code(exc: Exception, code: grpc.StatusCode) -> None:
    assert status_of(exc) == (code, str(exc))


def test_status_of_ignores_a_code_that_is_not_a_status_code() -> None:
    class HttpError(Exception):
        code = 404

    code, message = status_of(HttpError("page missing"))
    assert code is grpc.StatusCode.INTERNAL
    assert re.fullmatch(r"internal error [0-9a-f]{8} \(the node's log has the details\): HttpError: page missing",
                        message), message


def test_an_internal_error_tells_the_client_one_short_line_without_paths(caplog: pytest.LogCaptureFixture) -> None:
    stack = "\n".join(f"\tat org.example.Deep.call{i}(/opt/app/src/Deep.java:{i})" for i in range(3000))
    exc = RuntimeError(f"java.lang.StackOverflowError at /srv/flightsql/work/node-1/spill/q1.arrow\n{stack}")
    with caplog.at_level(logging.ERROR):
        code, message = status_of(exc)
    assert code is grpc.StatusCode.INTERNAL
    assert len(message) < 300 and "\n" not in message
    assert "/srv/" not in message and "q1.arrow" in message
    reference = message.split()[2]
    # the whole failure is in the log, under the reference the client was given
    assert any(reference in record.getMessage() and record.exc_info for record in caplog.records)


def test_status_of_uses_the_mapper_only_when_it_answers() -> None:
    def mapper(exc: BaseException):  # type: ignore[no-untyped-def]
        return (grpc.StatusCode.ABORTED, "mapped") if isinstance(exc, KeyError) else None

    assert status_of(KeyError("x"), mapper) == (grpc.StatusCode.ABORTED, "mapped")
    assert status_of(ResultNotFound("gone"), mapper) == (grpc.StatusCode.NOT_FOUND, "gone")


# -- malformed requests ---------------------------------------------------------


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x05ab"],
                         ids=["bad tag", "length past the end", "truncated field"])
def test_a_request_that_is_not_its_message_is_invalid_argument_without_a_traceback(
    channel, caplog: pytest.LogCaptureFixture, garbage: bytes,  # type: ignore[no-untyped-def]
) -> None:
    chan, _ = channel
    caplog.set_level(logging.DEBUG)
    calls = [
        lambda: chan.unary_unary(_method("GetFlightInfo"), _identity, _identity)(garbage, timeout=TIMEOUT),
        lambda: list(chan.unary_stream(_method("DoAction"), _identity, _identity)(garbage, timeout=TIMEOUT)),
        lambda: list(chan.unary_stream(_method("DoGet"), _identity, _identity)(garbage, timeout=TIMEOUT)),
    ]
    for call in calls:
        error = _rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "is not a valid" in error.details()
        _assert_no_traceback(error.details())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert _do_action(chan, b"fine") == [b"ok:fine", b"done"]  # and the service keeps serving
