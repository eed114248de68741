"""Tokens, tickets and pushes attacked on a real node: nobody acts as another user or as
the cluster, even a user who learnt the cluster secret's token key.

The node of this module has a secret file the test knows (so that it can sign tokens
the way a thief of the token key would) and a users file of its own that the tests
edit with the ``flightsql users`` command while the node runs.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flightmanager.keys import ClusterKeys
from flightsql.auth import TokenSigner, UserStore
from flightsql.protocol import codec
from flightsql.protocol import commands as cmd
from tests.integration.conftest import RunningNode, _add_user, start_node, stop_node

pytestmark = pytest.mark.integration

TTL = 600
SQL = "SELECT id FROM range(0, 1000, 1, 4)"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningNode, bytes, Path]]:
    work = tmp_path_factory.mktemp("tokens")
    users = work / "users"
    for user, password in (("alice", "alice-pw-1"), ("bob", "bob-pw-22"), ("dave", "dave-pw-333")):
        _add_user(users, user, password)
    secret = secrets.token_bytes(32)
    secret_file = work / "secret"
    secret_file.write_text(secret.hex() + "\n")
    secret_file.chmod(0o600)
    node = start_node(work / "node", "--users", str(users), "--secret-file", str(secret_file),
                      "--token-ttl", str(TTL), "--conf", "spark.driver.memory=1g")
    yield node, secret, users
    assert stop_node(node) == 0, node.log()[-3000:]


def _login(node: RunningNode, user: str, password: str) -> tuple[flight.FlightClient, flight.FlightCallOptions]:
    client = flight.connect(node.uri)
    header = client.authenticate_basic_token(user, password)
    return client, flight.FlightCallOptions(headers=[header], timeout=60)


def _with_token(node: RunningNode, token: str) -> tuple[flight.FlightClient, flight.FlightCallOptions]:
    return flight.connect(node.uri), flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())],
                                                              timeout=60)


def _info(client: flight.FlightClient, options: flight.FlightCallOptions, sql: str = SQL) -> flight.FlightInfo:
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=sql)))
    return client.get_flight_info(descriptor, options)


def _users(*args: str, password: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "flightsql.cli", "users", *args],
                   input=None if password is None else password + "\n", text=True, check=True, capture_output=True)


def _signer(secret: bytes, ttl: int = TTL) -> TokenSigner:
    return TokenSigner(ClusterKeys.derive(secret).tokens, ttl)


def _stamp(secret: bytes, users: Path, user: str) -> str:
    credential = UserStore.load(users).credential(user)
    assert credential is not None
    return _signer(secret).stamp(user, credential)


def test_a_token_signed_with_another_key_is_refused(secured) -> None:  # type: ignore[no-untyped-def]
    node, _, _ = secured
    client, options = _with_token(node, TokenSigner(secrets.token_bytes(32), TTL).issue("alice"))
    with pytest.raises(flight.FlightUnauthenticatedError, match="signature invalid"):
        _info(client, options)


def test_the_raw_cluster_secret_signs_no_token(secured) -> None:  # type: ignore[no-untyped-def]
    node, secret, users = secured
    stamp = TokenSigner(secret, TTL).stamp("alice", UserStore.load(users).credential("alice") or "")
    client, options = _with_token(node, TokenSigner(secret, TTL).issue("alice", stamp=stamp))
    with pytest.raises(flight.FlightUnauthenticatedError, match="signature invalid"):
        _info(client, options)


def test_a_token_for_a_user_who_does_not_exist_is_refused(secured) -> None:  # type: ignore[no-untyped-def]
    """Even signed with the cluster's own token key, as a thief of that key would."""
    node, secret, _ = secured
    client, options = _with_token(node, _signer(secret).issue("mallory"))
    with pytest.raises(flight.FlightUnauthenticatedError, match="no longer exists"):
        _info(client, options)


def test_a_token_living_longer_than_the_server_allows_is_refused(secured) -> None:  # type: ignore[no-untyped-def]
    node, secret, users = secured
    three_years = _signer(secret, 3 * 365 * 86400).issue("alice", stamp=_stamp(secret, users, "alice"))
    client, options = _with_token(node, three_years)
    with pytest.raises(flight.FlightUnauthenticatedError, match=f"longer than the {TTL} s"):
        _info(client, options)
    # the same user, stamp and key within the lifetime: accepted, so the refusal was the lifetime's
    client, options = _with_token(node, _signer(secret).issue("alice", stamp=_stamp(secret, users, "alice")))
    assert _info(client, options).endpoints


def test_removing_a_user_ends_their_session_at_once(secured) -> None:  # type: ignore[no-untyped-def]
    node, _, users = secured
    _users("add", str(users), "erin", "--password-stdin", password="erin-pw")
    client, options = _login(node, "erin", "erin-pw")
    assert _info(client, options).endpoints
    _users("remove", str(users), "erin")
    with pytest.raises(flight.FlightUnauthenticatedError, match="no longer exists"):
        _info(client, options)
    with pytest.raises(flight.FlightUnauthenticatedError, match="invalid user or password"):
        _login(node, "erin", "erin-pw")


def test_a_new_password_ends_the_old_tokens(secured) -> None:  # type: ignore[no-untyped-def]
    node, _, users = secured
    client, old_options = _login(node, "dave", "dave-pw-333")
    _users("add", str(users), "dave", "--password-stdin", password="dave-pw-new")
    with pytest.raises(flight.FlightUnauthenticatedError, match="password changed"):
        _info(client, old_options)
    client, options = _login(node, "dave", "dave-pw-new")
    assert _info(client, options).endpoints


@pytest.mark.parametrize("password", ["p", "pw", "pwd"])
def test_adbc_logs_in_users_of_every_length(secured, password: str) -> None:  # type: ignore[no-untyped-def]
    """ADBC sends Basic credentials without base64 padding: 'user:password' of every length mod 3."""
    import adbc_driver_flightsql.dbapi as flightsql

    node, _, users = secured
    user = f"u{len(password)}"
    _users("add", str(users), user, "--password-stdin", password=password)
    assert {len(f"{user}:{password}") % 3 for password in ("p", "pw", "pwd")} == {0, 1, 2}
    with flightsql.connect(node.uri, db_kwargs={"username": user, "password": password}) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 6 * 7 AS answer")
            assert cur.fetchall() == [(42,)]


def test_another_users_ticket_opens_nothing(secured) -> None:  # type: ignore[no-untyped-def]
    node, _, _ = secured
    alice, alice_options = _login(node, "alice", "alice-pw-1")
    bob, bob_options = _login(node, "bob", "bob-pw-22")
    info = _info(alice, alice_options)
    for endpoint in info.endpoints:
        with pytest.raises(flight.FlightUnauthorizedError, match="not issued to you"):
            bob.do_get(endpoint.ticket, bob_options).read_all()
    rows = sum(alice.do_get(e.ticket, alice_options).read_all().num_rows for e in info.endpoints)
    assert rows == 1000


def test_an_altered_ticket_opens_nothing(secured) -> None:  # type: ignore[no-untyped-def]
    node, _, _ = secured
    alice, options = _login(node, "alice", "alice-pw-1")
    first = _info(alice, options).endpoints[0].ticket.ticket
    second = _info(alice, options).endpoints[0].ticket.ticket
    spliced = first[:37] + second[37:]  # the first query's id with the second's MAC
    flipped = first[:-1] + bytes([first[-1] ^ 0x01])
    for forged in (spliced, flipped):
        with pytest.raises(flight.FlightUnauthorizedError, match="not issued to you"):
            alice.do_get(flight.Ticket(forged), options).read_all()
    with pytest.raises(pa.ArrowInvalid, match="not one this server issued"):  # INVALID_ARGUMENT
        alice.do_get(flight.Ticket(first[:20]), options).read_all()


def test_a_push_without_the_querys_mac_is_refused_and_changes_nothing(secured) -> None:  # type: ignore[no-untyped-def]
    """A process that reaches the internal port pushes nothing into a running query: not with
    a made-up MAC, not with the old secret-bearing header, not with the raw secret."""
    from flightmanager.keys import push_mac
    from flightmanager.push import PushHeader, completion_marker

    node, secret, _ = secured
    alice, options = _login(node, "alice", "alice-pw-1")
    info = _info(alice, options, "SELECT id FROM range(0, 1000, 1, 4)")
    query_id = info.endpoints[0].ticket.ticket[5:37].decode()
    internal = next(line for line in node.log_lines if "ready:" in line).split("(internal ")[1].split(",")[0]
    pusher = flight.connect(internal)
    forged = [
        PushHeader(query_id, 7, 0, "0" * 64).encode(),
        PushHeader(query_id, 7, 0, push_mac(secret, query_id)).encode(),  # keyed with the raw secret
        b'fm1:{"q": "%s", "p": 7, "a": 0, "s": "%s"}' % (query_id.encode(), secret.hex().encode()),
    ]
    schema = pa.schema([("id", pa.int64())])
    for command in forged:
        writer, reader = pusher.do_put(flight.FlightDescriptor.for_command(command), schema)
        with pytest.raises(flight.FlightUnauthorizedError, match="push refused"):
            writer.write_batch(pa.record_batch([pa.array(range(10_000, 10_005), pa.int64())], schema=schema))
            writer.write_metadata(pa.py_buffer(completion_marker(5)))
            writer.done_writing()
            reader.read()
            writer.close()
    ids = sorted(i for e in info.endpoints for i in alice.do_get(e.ticket, options).read_all().column("id").to_pylist())
    assert ids == list(range(1000))
