"""A Flight service on grpcio: the RPC plumbing.

Subclasses override the RPCs they offer; every other RPC answers UNIMPLEMENTED.
Whatever a handler raises is answered by :func:`flightmanager.flight.status.status_of`.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any

import grpc

from flightmanager.errors import MalformedRequest, Unsupported
from flightmanager.flight import Flight_pb2 as pb
from flightmanager.flight.status import ErrorMapper, status_of

log = logging.getLogger(__name__)

SERVICE_NAME = "arrow.flight.protocol.FlightService"


class FlightService:
    """Base Flight service: every RPC is UNIMPLEMENTED until a subclass offers it."""

    #: maps exceptions the subclass knows (for example Spark's) to statuses
    error_mapper: ErrorMapper | None = None

    def handshake(
        self, requests: Iterator[pb.HandshakeRequest], context: grpc.ServicerContext
    ) -> Iterable[pb.HandshakeResponse]:
        raise _unimplemented("Handshake")

    def list_flights(self, request: pb.Criteria, context: grpc.ServicerContext) -> Iterable[pb.FlightInfo]:
        raise _unimplemented("ListFlights")

    def get_flight_info(self, request: pb.FlightDescriptor, context: grpc.ServicerContext) -> pb.FlightInfo:
        raise _unimplemented("GetFlightInfo")

    def poll_flight_info(self, request: pb.FlightDescriptor, context: grpc.ServicerContext) -> pb.PollInfo:
        raise _unimplemented("PollFlightInfo")

    def get_schema(self, request: pb.FlightDescriptor, context: grpc.ServicerContext) -> pb.SchemaResult:
        raise _unimplemented("GetSchema")

    def do_get(self, request: pb.Ticket, context: grpc.ServicerContext) -> Iterable[bytes]:
        """Yield serialized FlightData messages."""
        raise _unimplemented("DoGet")

    def do_put(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterable[pb.PutResult]:
        """Consume serialized FlightData messages."""
        raise _unimplemented("DoPut")

    def do_exchange(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterable[bytes]:
        raise _unimplemented("DoExchange")

    def do_action(self, request: pb.Action, context: grpc.ServicerContext) -> Iterable[pb.Result]:
        raise _unimplemented(f"DoAction {request.type!r}")

    def list_actions(self, request: pb.Empty, context: grpc.ServicerContext) -> Iterable[pb.ActionType]:
        return []


def _unimplemented(what: str) -> Unsupported:
    return Unsupported(f"{what} is not supported by this service")


def _serialize(message: Any) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


def _identity(data: bytes) -> bytes:
    return data


def _abort(context: grpc.ServicerContext, exc: BaseException, mapper: ErrorMapper | None, call: str) -> None:
    code, message = status_of(exc, mapper, call)
    context.abort(code, message)


def _guard_unary(service: FlightService, rpc: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(request, context)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            _abort(context, exc, service.error_mapper, rpc)

    return handler


def _guard_stream(service: FlightService, rpc: str, fn: Callable[..., Iterable[Any]]) -> Callable[..., Iterator[Any]]:
    def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from fn(request, context)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            _abort(context, exc, service.error_mapper, rpc)

    return handler


def _parse(message_cls: Any, raw: bytes) -> Any:
    """Requests are parsed in the handler, not by grpcio: grpcio answers a message it
    cannot parse INTERNAL and logs a traceback for each one."""
    try:
        return message_cls.FromString(raw)
    except Exception:  # noqa: BLE001 - DecodeError, or a RuntimeWarning-turned-error of the C parser
        raise MalformedRequest(f"the request is not a valid {message_cls.DESCRIPTOR.name} message") from None


def _unary(
    message_cls: Any, fn: Callable[[Any, grpc.ServicerContext], Any]
) -> Callable[[bytes, grpc.ServicerContext], Any]:
    return lambda raw, context: fn(_parse(message_cls, raw), context)


def _streamed(message_cls: Any, fn: Callable[[Iterator[Any], grpc.ServicerContext], Any]) -> Callable[..., Any]:
    return lambda requests, context: fn((_parse(message_cls, raw) for raw in requests), context)


def _handlers(service: FlightService) -> grpc.GenericRpcHandler:
    s = service
    methods = {
        "Handshake": grpc.stream_stream_rpc_method_handler(
            _guard_stream(s, "Handshake", _streamed(pb.HandshakeRequest, s.handshake)), _identity, _serialize),
        "ListFlights": grpc.unary_stream_rpc_method_handler(
            _guard_stream(s, "ListFlights", _unary(pb.Criteria, s.list_flights)), _identity, _serialize),
        "GetFlightInfo": grpc.unary_unary_rpc_method_handler(
            _guard_unary(s, "GetFlightInfo", _unary(pb.FlightDescriptor, s.get_flight_info)), _identity, _serialize),
        "PollFlightInfo": grpc.unary_unary_rpc_method_handler(
            _guard_unary(s, "PollFlightInfo", _unary(pb.FlightDescriptor, s.poll_flight_info)), _identity, _serialize),
        "GetSchema": grpc.unary_unary_rpc_method_handler(
            _guard_unary(s, "GetSchema", _unary(pb.FlightDescriptor, s.get_schema)), _identity, _serialize),
        "DoGet": grpc.unary_stream_rpc_method_handler(
            _guard_stream(s, "DoGet", _unary(pb.Ticket, s.do_get)), _identity, _serialize),
        "DoPut": grpc.stream_stream_rpc_method_handler(
            _guard_stream(s, "DoPut", s.do_put), _identity, _serialize),
        "DoExchange": grpc.stream_stream_rpc_method_handler(
            _guard_stream(s, "DoExchange", s.do_exchange), _identity, _serialize),
        "DoAction": grpc.unary_stream_rpc_method_handler(
            _guard_stream(s, "DoAction", _unary(pb.Action, s.do_action)), _identity, _serialize),
        "ListActions": grpc.unary_stream_rpc_method_handler(
            _guard_stream(s, "ListActions", _unary(pb.Empty, s.list_actions)), _identity, _serialize),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, methods)


class PortInUse(OSError):
    """A port the node was told to listen on is taken (or not the node's to take)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"cannot listen on {host}:{port}: the port is in use (or the address is not this host's)")
        self.host, self.port = host, port


def bind_server(
    host: str, port: int, *, max_workers: int = 64, max_message: int = -1,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.Server, int]:
    """Bind a gRPC server to host:port (port 0: the OS picks); start it with :func:`serve`.

    The server allows its peers' keepalive pings and pings its clients: a client whose
    host is gone is noticed in seconds and its calls end.  A message larger than
    ``max_message`` bytes (-1: no limit) is refused by gRPC as it arrives, before any
    handler (and so before authentication), with RESOURCE_EXHAUSTED.  With ``credentials``
    the port speaks TLS only."""
    from flightmanager.peers import server_keepalive_options

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="flight"),
        options=[
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", max_message),
            ("grpc.so_reuseport", 0),
            *server_keepalive_options(),
        ],
    )
    if port and not _can_bind(host, port):
        raise PortInUse(host, port)  # before gRPC tries: its own failure is a log line of its own
    try:
        address = f"{_bracket(host)}:{port}"
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio raises this where older versions returned 0
        bound = 0
    if bound == 0:
        raise PortInUse(host, port)
    return server, bound


def serve(server: grpc.Server, service: FlightService) -> None:
    server.add_generic_rpc_handlers((_handlers(service),))
    server.start()


def start_server(service: FlightService, host: str, port: int, *, max_workers: int = 64) -> tuple[grpc.Server, int]:
    """Bind and start in one step; returns the server and its port."""
    server, bound = bind_server(host, port, max_workers=max_workers)
    serve(server, service)
    return server, bound


def check_free(host: str, port: int) -> None:
    """Raise :class:`PortInUse` if ``host:port`` cannot be listened on (port 0: any port)."""
    if port and not _can_bind(host, port):
        raise PortInUse(host, port)


def _can_bind(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
