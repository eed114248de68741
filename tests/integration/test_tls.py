"""A node with TLS, as a user starts one: certificates from ``flightsql tls``, then
``flightsql serve --tls-cert --tls-key --tls-ca``.  Every client the project supports
reads over ``grpc+tls``; the internal server takes pushes only from holders of a
certificate the cluster's CA issued."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import grpc
import pyarrow.flight as flight
import pytest

from flightmanager.flight import Flight_pb2 as pb
from flightsql.protocol import codec
from flightsql.protocol import commands as cmd
from tests.integration.conftest import PASSWORD, USER, RunningNode, _add_user, start_node, stop_node

pytestmark = pytest.mark.integration

DEMO_SQL = "SELECT count(*) AS n, sum(trip_id) AS s FROM demo.trips"
DEMO_ANSWER = (100000, sum(range(100000)))


def _tls(directory: Path, name: str, *hosts: str) -> None:
    args = [arg for host in hosts for arg in ("--host", host)]
    subprocess.run([sys.executable, "-m", "flightsql.cli", "tls", str(directory), "--name", name, *args],
                   check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    _tls(directory, "node", "localhost", "127.0.0.1")
    # a second, unrelated CA: a certificate a rogue pusher could make for itself
    _tls(directory / "rogue", "pusher", "localhost", "127.0.0.1")
    return directory


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[RunningNode]:
    work = tmp_path_factory.mktemp("tls-node")
    users = work / "users"
    _add_user(users, USER, PASSWORD)
    running = start_node(
        work, "--users", str(users), "--demo", "--http-port", "0",
        "--tls-cert", str(certs / "node.pem"), "--tls-key", str(certs / "node-key.pem"),
        "--tls-ca", str(certs / "ca.pem"),
        "--conf", "spark.driver.memory=768m",
    )
    yield running
    assert stop_node(running) == 0, running.log()[-3000:]


def _status_url(node: RunningNode) -> str:
    line = next(line for line in node.log_lines if "status page at " in line)
    return line.split("status page at ", 1)[1].split()[0]


def test_locations_are_tls_and_adbc_reads_every_row(tls_node: RunningNode, certs: Path) -> None:
    import adbc_driver_flightsql as adbc
    import adbc_driver_flightsql.dbapi as flightsql

    assert tls_node.uri.startswith("grpc+tls://")
    assert tls_node.internal_uri.startswith("grpc+tls://")
    options = {"username": USER, "password": PASSWORD,
               adbc.DatabaseOptions.TLS_ROOT_CERTS.value: (certs / "ca.pem").read_text()}
    with flightsql.connect(tls_node.uri, db_kwargs=options, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(DEMO_SQL)
        assert cur.fetchall() == [DEMO_ANSWER]
        # every row of a distributed result, pushed by the executors over mutual TLS
        cur.execute("SELECT id FROM range(0, 50000, 1, 4)")
        assert sorted(cur.fetch_arrow_table().column("id").to_pylist()) == list(range(50000))


def test_pyarrow_flight_reads_each_endpoint_at_its_tls_location(tls_node: RunningNode, certs: Path) -> None:
    ca = (certs / "ca.pem").read_bytes()
    client = flight.connect(tls_node.uri, tls_root_certs=ca)
    options = flight.FlightCallOptions(headers=[client.authenticate_basic_token(USER, PASSWORD)])
    query = codec.encode_command(cmd.CommandStatementQuery(query="SELECT id FROM range(1000)"))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(query), options)
    rows = []
    for endpoint in info.endpoints:
        assert [location.uri.decode() for location in endpoint.locations] == [tls_node.uri]
        reader = flight.connect(endpoint.locations[0].uri.decode(), tls_root_certs=ca)
        rows += reader.do_get(endpoint.ticket, options).read_all().column("id").to_pylist()
    assert sorted(rows) == list(range(1000))


def test_a_client_that_does_not_trust_the_ca_or_speaks_plain_is_refused(tls_node: RunningNode) -> None:
    query = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query="SELECT 1")))
    untrusting = flight.connect(tls_node.uri)
    with pytest.raises(flight.FlightUnavailableError, match="(?i)certificate verify failed"):
        untrusting.get_flight_info(query)
    plain = flight.connect(tls_node.uri.replace("grpc+tls://", "grpc://"))
    with pytest.raises(flight.FlightUnavailableError):
        plain.get_flight_info(query)


def test_the_query_command_speaks_tls(tls_node: RunningNode, certs: Path, tmp_path: Path) -> None:
    import pyarrow.csv as csv

    command = [sys.executable, "-m", "flightsql.cli", "query", "--uri", tls_node.uri, "--user", USER,
               "--password-stdin"]
    output = tmp_path / "answer.csv"
    trusted = subprocess.run([*command, "--tls-root-certs", str(certs / "ca.pem"), "--output", str(output),
                              DEMO_SQL], input=PASSWORD + "\n", capture_output=True, text=True, timeout=120)
    assert trusted.returncode == 0, trusted.stderr
    table = csv.read_csv(output)
    assert (table.column("n")[0].as_py(), table.column("s")[0].as_py()) == DEMO_ANSWER
    untrusted = subprocess.run([*command, DEMO_SQL], input=PASSWORD + "\n", capture_output=True, text=True,
                               timeout=120)
    assert untrusted.returncode != 0
    assert "certificate verify failed" in untrusted.stderr


def test_the_status_page_is_https(tls_node: RunningNode, certs: Path) -> None:
    url = _status_url(tls_node)
    assert url.startswith("https://")
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    request = urllib.request.Request(url + "api/status")
    import base64

    request.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        assert json.loads(response.read())["node"]["public_uri"] == tls_node.uri


def test_the_data_source_reads_and_writes_over_tls(tls_node: RunningNode, certs: Path, spark: Any) -> None:
    from datasource import FlightSqlDataSource

    spark.dataSource.register(FlightSqlDataSource)
    options = {"uri": tls_node.uri, "user": USER, "password": PASSWORD,
               "tlsRootCerts": (certs / "ca.pem").read_text()}
    spark.range(0, 3000, 1, 3).write.format("flightsql").options(table="tls_written",
                                                                   **options).mode("overwrite").save()
    df = spark.read.format("flightsql").options(query="SELECT count(*) AS n, sum(id) AS s FROM tls_written",
                                                **options).load()
    assert [tuple(row) for row in df.collect()] == [(3000, sum(range(3000)))]


def _push(uri: str, credentials: grpc.ChannelCredentials) -> None:
    """A push as an executor sends one, with a made-up header; the server's answer or the
    handshake's failure is raised."""
    target = uri.split("://", 1)[1]
    with grpc.secure_channel(target, credentials) as channel:
        call = channel.stream_stream("/arrow.flight.protocol.FlightService/DoPut",
                                     request_serializer=None, response_deserializer=None)
        descriptor = pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=b'{"query": "q"}')
        list(call(iter([pb.FlightData(flight_descriptor=descriptor).SerializeToString()]), timeout=20))


def test_pushes_without_a_certificate_of_the_cluster_are_refused(tls_node: RunningNode, certs: Path) -> None:
    internal = tls_node.internal_uri
    ca = (certs / "ca.pem").read_bytes()
    rogue = certs / "rogue"
    attempts = {
        "no client certificate": grpc.ssl_channel_credentials(root_certificates=ca),
        "a certificate of another CA": grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=(rogue / "pusher-key.pem").read_bytes(),
            certificate_chain=(rogue / "pusher.pem").read_bytes()),
    }
    for what, credentials in attempts.items():
        with pytest.raises(grpc.RpcError) as refused:
            _push(internal, credentials)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, what
    # a holder of the cluster's certificate gets through TLS, and is judged by the push's MAC
    own = grpc.ssl_channel_credentials(root_certificates=ca, private_key=(certs / "node-key.pem").read_bytes(),
                                       certificate_chain=(certs / "node.pem").read_bytes())
    with pytest.raises(grpc.RpcError) as judged:
        _push(internal, own)
    assert judged.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED)
    # and the node still serves
    import adbc_driver_flightsql as adbc
    import adbc_driver_flightsql.dbapi as flightsql

    options = {"username": USER, "password": PASSWORD, adbc.DatabaseOptions.TLS_ROOT_CERTS.value: ca.decode()}
    with flightsql.connect(tls_node.uri, db_kwargs=options, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]


def test_tls_settings_that_cannot_work_stop_the_node_at_once(tmp_path: Path, certs: Path) -> None:
    cases = {
        ("--tls-cert", str(certs / "node.pem")): "--tls-cert and --tls-key go together",
        ("--tls-cert", str(certs / "node.pem"), "--tls-key", str(certs / "rogue" / "pusher-key.pem")):
            "are not a PEM certificate and its key",
        ("--tls-cert", str(certs / "node.pem"), "--tls-key", str(certs / "missing.pem")): "TLS file not found",
    }
    for args, message in cases.items():
        result = subprocess.run([sys.executable, "-m", "flightsql.cli", "serve", "--work-dir", str(tmp_path), *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
