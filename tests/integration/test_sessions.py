"""Client sessions: each connection its own Spark session, its state kept for the cluster.

The first tests drive :class:`Sessions` on the test process's Spark, two instances standing
for two nodes over one store; the rest go through a real node with ADBC and raw Flight.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pyarrow.flight as flight
import pytest

from flightmanager.flight import Flight_pb2 as pb
from flightsql.server.sessions import SESSION_COOKIE, MemorySessionStore, Sessions
from tests.integration.conftest import OTHER_PASSWORD, OTHER_USER, RunningNode, connect, flight_client

pytestmark = pytest.mark.integration


@pytest.fixture()
def two_nodes(spark) -> Iterator[tuple[Sessions, Sessions, MemorySessionStore]]:  # type: ignore[no-untyped-def]
    store = MemorySessionStore()
    yield Sessions(spark, store), Sessions(spark, store), store


def test_a_session_s_settings_catalog_and_schema_follow_it_to_another_node(spark, two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = two_nodes
    spark.sql("CREATE DATABASE IF NOT EXISTS sessions_elsewhere")
    here = a.open("alice", None)
    here.spark.sql("USE sessions_elsewhere")
    here.spark.sql("SET spark.sql.shuffle.partitions=7")
    assert here.set_option("execution_mode", "single") is None
    a.record(here)

    there = b.open("alice", here.session_id)
    assert there.spark is not here.spark  # another node's copy
    assert there.spark.catalog.currentDatabase() == "sessions_elsewhere"
    assert there.spark.conf.get("spark.sql.shuffle.partitions") == "7"
    assert there.execution_mode("auto") == "single"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"  # nothing leaked into the root

    there.spark.sql("SET spark.sql.shuffle.partitions=8")  # changed there, seen here on the next call
    there.spark.sql("RESET spark.sql.ansi.enabled")
    b.record(there)
    back = a.open("alice", here.session_id)
    assert back.spark.conf.get("spark.sql.shuffle.partitions") == "8"
    assert back.spark.catalog.currentDatabase() == "sessions_elsewhere"


def test_a_session_is_its_user_s_alone(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = two_nodes
    alice = a.open("alice", None)
    alice.spark.sql("SET spark.sql.shuffle.partitions=9")
    a.record(alice)
    mallory = b.open("mallory", alice.session_id)  # alice's cookie, presented by someone else
    assert mallory.spark.conf.get("spark.sql.shuffle.partitions") != "9"
    assert mallory.key != alice.key


def test_closing_a_session_ends_it_on_every_node(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, store = two_nodes
    session = a.open("alice", None)
    session.spark.sql("SET spark.sql.shuffle.partitions=3")
    a.record(session)
    b.open("alice", session.session_id)
    a.close(session)
    assert store.version(session.key) is None
    again = b.open("alice", session.session_id)
    assert again.spark.conf.get("spark.sql.shuffle.partitions") == "4"  # afresh


def test_an_idle_session_ends_and_a_used_one_does_not(spark) -> None:  # type: ignore[no-untyped-def]
    store = MemorySessionStore()
    sessions = Sessions(spark, store, idle_timeout=0.4)
    idle, busy = sessions.open("alice", None), sessions.open("alice", None)
    for session in (idle, busy):
        session.spark.sql("SET spark.sql.shuffle.partitions=5")
        sessions.record(session)
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:
        sessions.open("alice", busy.session_id)
        time.sleep(0.05)
    assert sessions.expire() == 1
    assert store.version(idle.key) is None and store.version(busy.key) is not None
    assert sessions.open("alice", idle.session_id).spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert sessions.open("alice", busy.session_id).spark.conf.get("spark.sql.shuffle.partitions") == "5"


def test_a_session_that_changed_nothing_is_not_recorded(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, _, store = two_nodes
    session = a.open("alice", None)
    session.spark.sql("SELECT 1").collect()
    a.record(session)
    assert store.version(session.key) is None


# -- through a node ----------------------------------------------------------------


def _shuffle_partitions(conn) -> str:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("SET spark.sql.shuffle.partitions")
        return cur.fetchone()[1]


def test_connections_of_one_user_are_isolated(node: RunningNode) -> None:
    connections = [connect(node) for _ in range(4)]
    try:
        def configure(i: int) -> None:
            with connections[i].cursor() as cur:
                cur.execute(f"SET spark.sql.shuffle.partitions={11 + i}")
                cur.execute(f"CREATE OR REPLACE TEMPORARY VIEW mine AS SELECT {i} AS owner")

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(configure, range(4)))
        for i, conn in enumerate(connections):
            assert _shuffle_partitions(conn) == str(11 + i)
            with conn.cursor() as cur:
                cur.execute("SELECT owner FROM mine")
                assert cur.fetchall() == [(i,)]
    finally:
        for conn in connections:
            conn.close()


def test_adbc_with_cookies_keeps_its_session(node: RunningNode) -> None:
    import adbc_driver_flightsql.dbapi as flightsql
    from adbc_driver_flightsql import DatabaseOptions

    kwargs = {"username": "alice", "password": "wonderland-3141", DatabaseOptions.WITH_COOKIE_MIDDLEWARE.value: "true"}
    with flightsql.connect(node.uri, db_kwargs=kwargs) as first, flightsql.connect(node.uri, db_kwargs=kwargs) as second:
        with first.cursor() as cur:
            cur.execute("SET spark.sql.shuffle.partitions=21")
        assert _shuffle_partitions(first) == "21"
        assert _shuffle_partitions(second) != "21"


class _Cookies(flight.ClientMiddlewareFactory):
    """Records the cookies a server sets, and sends back the ones given."""

    def __init__(self, send: str | None = None) -> None:
        self.set: list[str] = []
        self.send = send

    def start_call(self, info):  # type: ignore[no-untyped-def]
        return _CookieCall(self)


class _CookieCall(flight.ClientMiddleware):
    def __init__(self, factory: _Cookies) -> None:
        self.factory = factory

    def sending_headers(self):  # type: ignore[no-untyped-def]
        return {"cookie": f"{SESSION_COOKIE}={self.factory.send}"} if self.factory.send else {}

    def received_headers(self, headers):  # type: ignore[no-untyped-def]
        self.factory.set.extend(headers.get("set-cookie", []))


def _sql(client: flight.FlightClient, options: flight.FlightCallOptions, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    from flightsql.protocol import codec
    from flightsql.protocol import commands as cmd

    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=sql)))
    info = client.get_flight_info(descriptor, options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    return list(zip(*(c.to_pylist() for c in table.columns)))


def test_the_first_call_is_given_a_session_cookie_and_the_cookie_is_honoured(node: RunningNode) -> None:
    cookies = _Cookies()
    client = flight.connect(node.uri, middleware=[cookies])
    token = client.authenticate_basic_token("alice", "wonderland-3141")
    assert any(c.startswith(f"{SESSION_COOKIE}=") for c in cookies.set)
    session_id = cookies.set[0].split("=", 1)[1].split(";")[0]
    options = flight.FlightCallOptions(headers=[token])
    _sql(client, options, "SET spark.sql.shuffle.partitions=17")

    # another login (another token, another session), carrying the first session's cookie
    returning = _Cookies(send=session_id)
    other = flight.connect(node.uri, middleware=[returning])
    other_options = flight.FlightCallOptions(headers=[other.authenticate_basic_token("alice", "wonderland-3141")])
    assert _sql(other, other_options, "SET spark.sql.shuffle.partitions") == [("spark.sql.shuffle.partitions", "17")]
    assert not returning.set  # the cookie named a session: nothing new to set

    # bob presenting alice's cookie gets a session of his own
    bobs = _Cookies(send=session_id)
    bob = flight.connect(node.uri, middleware=[bobs])
    bob_options = flight.FlightCallOptions(headers=[bob.authenticate_basic_token(OTHER_USER, OTHER_PASSWORD)])
    assert _sql(bob, bob_options, "SET spark.sql.shuffle.partitions") != [("spark.sql.shuffle.partitions", "17")]


def _action(client: flight.FlightClient, options: flight.FlightCallOptions, name: str, message) -> bytes:  # type: ignore[no-untyped-def]
    results = list(client.do_action(flight.Action(name, message.SerializeToString()), options))
    return results[0].body.to_pybytes() if results else b""


def test_session_options_follow_the_specification(node: RunningNode) -> None:
    client, options = flight_client(node)
    value = pb.SessionOptionValue
    request = pb.SetSessionOptionsRequest(session_options={
        "spark.sql.shuffle.partitions": value(int64_value=13),
        "execution_mode": value(string_value="single"),
        "schema": value(string_value="demo"),
        "no_such_option": value(bool_value=True),
        "spark.sql.ansi.enabled": value(string_list_value=value.StringListValue(values=["a", "b"])),
        "catalog": value(double_value=1.5),
    })
    result = pb.SetSessionOptionsResult.FromString(_action(client, options, "SetSessionOptions", request))
    errors = {name: error.value for name, error in result.errors.items()}
    assert errors == {
        "no_such_option": pb.SetSessionOptionsResult.INVALID_NAME,
        "spark.sql.ansi.enabled": pb.SetSessionOptionsResult.INVALID_VALUE,
        "catalog": pb.SetSessionOptionsResult.INVALID_VALUE,
    }
    got = pb.GetSessionOptionsResult.FromString(_action(client, options, "GetSessionOptions", pb.GetSessionOptionsRequest()))
    read = {name: v.WhichOneof("option_value") and getattr(v, v.WhichOneof("option_value"))
            for name, v in got.session_options.items()}
    assert read["spark.sql.shuffle.partitions"] == 13  # as it was given: an int64
    assert read["execution_mode"] == "single" and read["schema"] == "demo"
    assert read["catalog"] == "spark_catalog"

    erase = pb.SetSessionOptionsRequest(session_options={"spark.sql.shuffle.partitions": value()})
    assert not pb.SetSessionOptionsResult.FromString(_action(client, options, "SetSessionOptions", erase)).errors
    assert _sql(client, options, "SET spark.sql.shuffle.partitions")[0][1] != "13"

    closed = pb.CloseSessionResult.FromString(_action(client, options, "CloseSession", pb.CloseSessionRequest()))
    assert closed.status == pb.CloseSessionResult.CLOSED
    # the token still names the session id: the next call starts it afresh
    assert _sql(client, options, "SELECT current_database()") == [("default",)]
