"""Authentication, ownership, lifecycle actions and malformed input, over raw Flight."""

from __future__ import annotations

import adbc_driver_manager
import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flightmanager.flight import Flight_pb2 as pb
from flightsql.protocol import codec
from flightsql.protocol import commands as cmd
from tests.integration.conftest import OTHER_PASSWORD, OTHER_USER, PASSWORD, USER, connect, flight_client

pytestmark = pytest.mark.integration


def _query_info(client, options, sql: str) -> flight.FlightInfo:  # type: ignore[no-untyped-def]
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=sql)))
    return client.get_flight_info(descriptor, options)


def _raw_status(node, method: str, request: bytes, metadata=()):  # type: ignore[no-untyped-def]
    """Call an RPC with raw bytes; returns (grpc code, details)."""
    target = node.uri.removeprefix("grpc://")
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_stream(f"/arrow.flight.protocol.FlightService/{method}",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            list(call(request, metadata=metadata, timeout=60))
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def _bearer(node) -> tuple[tuple[str, str], ...]:  # type: ignore[no-untyped-def]
    with flight.connect(node.uri) as client:
        key, value = client.authenticate_basic_token(USER, PASSWORD)
    return ((key.decode(), value.decode()),)


def test_wrong_password_is_refused(node) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(adbc_driver_manager.Error) as info:
        with connect(node, USER, "not-the-password") as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED


def test_no_credentials_is_unauthenticated(node) -> None:  # type: ignore[no-untyped-def]
    code, details = _raw_status(node, "ListActions", b"")
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "authentication required" in details


def test_forged_token_is_unauthenticated(node) -> None:  # type: ignore[no-untyped-def]
    code, _ = _raw_status(node, "ListActions", b"", metadata=(("authorization", "Bearer v1.e30.AAAA"),))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_another_users_ticket_is_permission_denied(node) -> None:  # type: ignore[no-untyped-def]
    alice, alice_options = flight_client(node)
    info = _query_info(alice, alice_options, "SELECT id FROM range(10)")
    bob, bob_options = flight_client(node, OTHER_USER, OTHER_PASSWORD)
    with pytest.raises(flight.FlightUnauthorizedError):
        bob.do_get(info.endpoints[0].ticket, bob_options).read_all()
    assert alice.do_get(info.endpoints[0].ticket, alice_options).read_all().num_rows == 10


def test_endpoint_is_rereadable_and_renewable(node) -> None:  # type: ignore[no-untyped-def]
    client, options = flight_client(node)
    info = _query_info(client, options, "SELECT id FROM range(1000)")
    endpoint = info.endpoints[0]
    assert endpoint.expiration_time is not None
    first = client.do_get(endpoint.ticket, options).read_all()
    again = client.do_get(endpoint.ticket, options).read_all()
    assert first.equals(again) and first.num_rows == 1000
    request = pb.RenewFlightEndpointRequest(endpoint=pb.FlightEndpoint.FromString(endpoint.serialize()))
    (result,) = client.do_action(flight.Action("RenewFlightEndpoint", request.SerializeToString()), options)
    renewed = pb.FlightEndpoint.FromString(result.body.to_pybytes())
    before = pb.FlightEndpoint.FromString(endpoint.serialize()).expiration_time.ToNanoseconds()
    assert renewed.expiration_time.ToNanoseconds() > before
    assert renewed.ticket.ticket == endpoint.ticket.ticket


def _cancel(client, options, info) -> int:  # type: ignore[no-untyped-def]
    request = pb.CancelFlightInfoRequest(info=pb.FlightInfo.FromString(info.serialize()))
    (result,) = client.do_action(flight.Action("CancelFlightInfo", request.SerializeToString()), options)
    return pb.CancelFlightInfoResult.FromString(result.body.to_pybytes()).status


def test_cancelling_a_running_query_ends_its_stream(node) -> None:  # type: ignore[no-untyped-def]
    client, options = flight_client(node)
    # slow enough to be running when cancelled: ten billion joined rows
    info = _query_info(client, options, "SELECT count(*) FROM range(0, 100000) a CROSS JOIN range(0, 100000) b")
    assert _cancel(client, options, info) == pb.CANCEL_STATUS_CANCELLED
    with pytest.raises(flight.FlightCancelledError) as raised:
        client.do_get(info.endpoints[0].ticket, options).read_all()
    assert "cancelled" in str(raised.value)


def test_unknown_command_is_unimplemented_and_named(node) -> None:  # type: ignore[no-untyped-def]
    from google.protobuf import any_pb2

    packed = any_pb2.Any(type_url="type.googleapis.com/arrow.flight.protocol.sql.CommandNoSuchThing", value=b"")
    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=packed.SerializeToString())
    code, details = _unary(node, "GetFlightInfo", descriptor.SerializeToString())
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert "CommandNoSuchThing" in details


def test_malformed_command_is_invalid_argument(node) -> None:  # type: ignore[no-untyped-def]
    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=b"\xff\xfe not protobuf")
    code, details = _unary(node, "GetFlightInfo", descriptor.SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Traceback" not in details


def test_path_descriptor_is_invalid_argument(node) -> None:  # type: ignore[no-untyped-def]
    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.PATH, path=["a", "b"])
    code, details = _unary(node, "GetFlightInfo", descriptor.SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_update_sent_to_get_flight_info_names_the_rpc(node) -> None:  # type: ignore[no-untyped-def]
    any_bytes = codec.encode_command(cmd.CommandStatementUpdate(query="CREATE TABLE x (a INT)"))
    descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=any_bytes)
    code, details = _unary(node, "GetFlightInfo", descriptor.SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "CommandStatementUpdate" in details and "GetFlightInfo" in details


def test_unknown_action_is_unimplemented(node) -> None:  # type: ignore[no-untyped-def]
    code, details = _raw_status(node, "DoAction", pb.Action(type="Explode", body=b"").SerializeToString(), _bearer(node))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert "Explode" in details


def test_transactions_are_unimplemented(node) -> None:  # type: ignore[no-untyped-def]
    body = codec.encode_action_body(cmd.BeginTransaction())
    code, details = _raw_status(node, "DoAction", pb.Action(type="BeginTransaction", body=body).SerializeToString(), _bearer(node))
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_foreign_ticket_is_invalid_argument(node) -> None:  # type: ignore[no-untyped-def]
    code, details = _raw_status(node, "DoGet", pb.Ticket(ticket=b"not-ours").SerializeToString(), _bearer(node))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_ticket_made_up_by_a_client_opens_nothing(node) -> None:  # type: ignore[no-untyped-def]
    """Well formed, but its MAC was not made by the cluster for this user: refused before any lookup."""
    from flightsql.server.tickets import ResultTicket

    ticket = ResultTicket("0" * 32, b"\x00" * 16).encode()
    code, details = _raw_status(node, "DoGet", pb.Ticket(ticket=ticket).SerializeToString(), _bearer(node))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "not issued to you" in details


def test_node_still_serves_after_bad_input(conn) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("SELECT 41 + 1 AS answer")
        assert cur.fetchall() == [(42,)]


def test_session_options_switch_schema(node) -> None:  # type: ignore[no-untyped-def]
    with connect(node) as conn, conn.cursor() as cur:
        conn.adbc_current_db_schema = "demo"
        cur.execute("SELECT count(*) FROM trips")
        assert cur.fetchone() == (100_000,)
        assert conn.adbc_current_db_schema == "demo"


def _unary(node, method: str, request: bytes):  # type: ignore[no-untyped-def]
    target = node.uri.removeprefix("grpc://")
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(f"/arrow.flight.protocol.FlightService/{method}",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            call(request, metadata=_bearer(node), timeout=60)
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def test_a_message_over_the_size_limit_is_refused_before_anything_reads_it(node) -> None:  # type: ignore[no-untyped-def]
    """The public server takes messages up to --max-message-size (64 MiB by default): a
    larger one is RESOURCE_EXHAUSTED as it arrives, with or without credentials, and the
    node keeps serving. A message that is not protobuf is INVALID_ARGUMENT, also unread."""
    target = node.uri.removeprefix("grpc://")
    huge = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=b"x" * (65 * 1024 * 1024)).SerializeToString()
    client = flight.connect(node.uri)
    name, token = client.authenticate_basic_token(USER, PASSWORD)
    options = flight.FlightCallOptions(headers=[(name, token)])
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)]) as channel:
        call = channel.unary_unary("/arrow.flight.protocol.FlightService/GetFlightInfo",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        for metadata in ((), ((name.decode(), token.decode()),)):
            with pytest.raises(grpc.RpcError) as refused:
                call(huge, metadata=metadata, timeout=60)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value.details()
        with pytest.raises(grpc.RpcError) as garbage:
            call(b"\xff\xff\xff", timeout=30)
        assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT, garbage.value.details()
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query="SELECT 1")))
    info = client.get_flight_info(descriptor, options)
    assert client.do_get(info.endpoints[0].ticket, options).read_all().num_rows == 1
    client.close()
