"""The Livy-compatible REST API of two real nodes on one ZooKeeper, driven by Livy's own
Python client (``livy`` from PyPI) and by plain HTTP: SQL sessions and statements, their
results against the same query over Flight SQL, a session used through either node,
cancel, "too busy" answers, and requests that try to cross users or break the server."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pyarrow.flight as flight
import pytest

from tests.integration.conftest import (
    OTHER_PASSWORD, OTHER_USER, PASSWORD, USER, RunningNode, _add_user, connect, start_node, stop_node, wait_until,
)
from tests.integration.status import basic
from tests.integration.zookeeper import ZooKeeperServer, running_zookeeper

pytestmark = pytest.mark.integration

MAX_ROWS = 50
SLOW_SQL = "SELECT sum(id) FROM range(0, 100000000000, 1, 2)"  # minutes of work: cancelled by the tests


@dataclass
class RestNode:
    node: RunningNode
    url: str

    def call(self, method: str, path: str, body: Any = None, authorization: str | None = "",
             raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        header = basic(USER, PASSWORD) if authorization == "" else authorization
        if header is not None:
            request.add_header("Authorization", header)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null"), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null"), dict(error.headers)

    def ok(self, method: str, path: str, body: Any = None, authorization: str | None = "") -> Any:
        status, doc, _ = self.call(method, path, body, authorization)
        assert status in (200, 201), (status, doc)
        return doc

    def finished(self, session: int, statement: int, timeout: float = 120) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def done() -> bool:
            found.update(self.ok("GET", f"/sessions/{session}/statements/{statement}"))
            return found["state"] in ("available", "error", "cancelled")

        wait_until(done, timeout, f"statement {statement} of session {session} to finish")
        return found


def _rest_url(node: RunningNode) -> str:
    line = next(line for line in node.log_lines if "Livy REST API at " in line)
    return line.split("Livy REST API at ", 1)[1].split()[0]


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Path:
    users = tmp_path_factory.mktemp("rest-users") / "users"
    _add_user(users, USER, PASSWORD)
    _add_user(users, OTHER_USER, OTHER_PASSWORD)
    return users


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    with running_zookeeper(tmp_path_factory.mktemp("rest-zookeeper")) as server:
        yield server


def _node_args(users: Path, zookeeper: ZooKeeperServer) -> tuple[str, ...]:
    return ("--users", str(users), *zookeeper.node_args("/rest-test"), "--rest-port", "0",
            "--rest-max-rows", str(MAX_ROWS), "--max-running", "1", "--max-queued", "0",
            "--conf", "spark.driver.memory=768m")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: the second node also runs batches (two at once), on a fixed port so that it is the same
#: node after a restart; its operator lets users read files by path (a batch's output)
BATCH_ARGS = ("--rest-batches", "2", "--allow-server-access", "path-sources")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, users: Path, zookeeper: ZooKeeperServer) -> Iterator[list[RestNode]]:
    base = tmp_path_factory.mktemp("rest")
    common = _node_args(users, zookeeper)
    with ThreadPoolExecutor(2) as pool:
        started = list(pool.map(lambda args: start_node(base / args[0], *common, *args[1:]),
                                [("a", "--demo"), ("b", *BATCH_ARGS, "--port", str(_free_port()))]))
    running = [RestNode(node, _rest_url(node)) for node in started]
    yield running  # the batch tests restart the second node in place
    codes = [stop_node(n.node) for n in running if n.node.process.poll() is None]
    assert codes == [0, 0], "\n".join(n.node.log()[-3000:] for n in running)


def test_a_livy_client_runs_sql_and_gets_what_flight_sql_gets(nodes: list[RestNode]) -> None:
    from livy import LivySession, SessionKind

    sql = "SELECT city, count(*) AS trips, round(avg(minutes), 3) AS minutes FROM demo.trips GROUP BY city ORDER BY city"
    with LivySession.create(nodes[0].url, kind=SessionKind.SQL, auth=(USER, PASSWORD)) as session:
        assert session.state.value == "idle"
        frame = session.download_sql(sql)
        session_id = session.session_id
    with connect(nodes[0].node) as conn, conn.cursor() as cur:
        cur.execute(sql)
        expected = cur.fetchall()
    assert [tuple(row) for row in frame.itertuples(index=False)] == [tuple(r) for r in expected]
    status, doc, _ = nodes[0].call("GET", f"/sessions/{session_id}")  # closed: gone
    assert status == 404 and "not found" in doc["msg"]


def test_statements_follow_livy_s_shapes_and_link_the_whole_result_over_flight(nodes: list[RestNode]) -> None:
    node = nodes[0]
    session = node.ok("POST", "/sessions", {"kind": "sql", "name": "shapes"})
    assert session["state"] == "idle" and session["owner"] == USER and session["kind"] == "sql"
    sid = session["id"]
    posted = node.ok("POST", f"/sessions/{sid}/statements",
                     {"code": "SELECT id, CAST(id AS STRING) AS label FROM range(0, 5000, 1, 4)", "kind": "sql"})
    assert posted["state"] in ("waiting", "running", "available") and posted["code"].startswith("SELECT id")
    done = node.finished(sid, posted["id"])
    assert done["state"] == "available" and done["progress"] == 1.0 and done["completed"] >= done["started"] > 0
    output = done["output"]
    assert output["status"] == "ok" and output["execution_count"] == posted["id"]
    result = output["data"]["application/json"]
    assert [f["name"] for f in result["schema"]["fields"]] == ["id", "label"]
    assert result["schema"]["fields"][0]["type"] == "long"
    assert len(result["data"]) == MAX_ROWS and output["truncated"] is True
    assert all(str(row[0]) == row[1] for row in result["data"])
    # beyond Livy: every endpoint, read in full with a plain Flight client
    rows = 0
    for endpoint in output["flight"]["endpoints"]:
        client = flight.connect(endpoint["locations"][0])
        options = flight.FlightCallOptions(headers=[client.authenticate_basic_token(USER, PASSWORD)])
        rows += client.do_get(flight.Ticket(base64.b64decode(endpoint["ticket"])), options).read_all().num_rows
    assert rows == 5000 and output["flight"]["total_records"] in (None, 5000)

    failed = node.finished(sid, node.ok("POST", f"/sessions/{sid}/statements", {"code": "SELECT * FROM nowhere"})["id"])
    assert failed["state"] == "error" and failed["output"]["status"] == "error"
    assert "TABLE_OR_VIEW_NOT_FOUND" in failed["output"]["evalue"] and failed["output"]["ename"]

    listed = node.ok("GET", f"/sessions/{sid}/statements")
    assert listed["total_statements"] == 2 and [s["id"] for s in listed["statements"]] == [posted["id"], failed["id"]]
    assert node.ok("GET", f"/sessions/{sid}/state") == {"id": sid, "state": "idle"}
    log = node.ok("GET", f"/sessions/{sid}/log?from=0&size=100")
    assert log["id"] == sid and log["total"] >= 3 and any("statement" in line for line in log["log"])
    assert node.ok("GET", f"/api/livy/sessions/{sid}")["id"] == sid  # the same API under /api/livy
    for kind in ("spark", "pyspark"):
        status, doc, _ = node.call("POST", f"/sessions/{sid}/statements", {"code": "1 + 1", "kind": kind})
        assert status == 400 and "sql" in doc["msg"]
    status, doc, _ = node.call("POST", "/sessions", {"kind": "pyspark"})
    assert status == 400 and "SQL" in doc["msg"]
    assert node.ok("DELETE", f"/sessions/{sid}") == {"msg": "deleted"}


def test_a_session_goes_on_through_the_other_node(nodes: list[RestNode]) -> None:
    first, second = nodes
    sid = first.ok("POST", "/sessions", {"kind": "sql", "conf": {"spark.sql.shuffle.partitions": "7"}})["id"]
    used = first.finished(sid, first.ok("POST", f"/sessions/{sid}/statements",
                                        {"code": "SET spark.sql.session.timeZone = Asia/Tokyo"})["id"])
    assert used["state"] == "available", used
    # the other node answers for the session and its statements, and runs the next one in it
    assert second.ok("GET", f"/sessions/{sid}")["state"] == "idle"
    assert second.ok("GET", f"/sessions/{sid}/statements/{used['id']}")["state"] == "available"
    asked = second.ok("POST", f"/sessions/{sid}/statements", {"code": (
        "SELECT current_timezone() AS zone, CAST(TIMESTAMP'2026-01-01 00:00:00 UTC' AS STRING) AS local")})
    rows = second.finished(sid, asked["id"])["output"]["data"]["application/json"]["data"]
    assert rows == [["Asia/Tokyo", "2026-01-01 09:00:00"]]
    setting = second.ok("POST", f"/sessions/{sid}/statements", {"code": "SET spark.sql.shuffle.partitions"})
    assert second.finished(sid, setting["id"])["output"]["data"]["application/json"]["data"] == [
        ["spark.sql.shuffle.partitions", "7"]]
    second.ok("DELETE", f"/sessions/{sid}")
    status, _, _ = first.call("GET", f"/sessions/{sid}")
    assert status == 404


def test_a_statement_is_cancelled_and_a_full_node_answers_503(nodes: list[RestNode]) -> None:
    node = nodes[1]
    sid = node.ok("POST", "/sessions", {"kind": "sql"})["id"]
    slow = node.ok("POST", f"/sessions/{sid}/statements", {"code": SLOW_SQL})
    wait_until(lambda: node.ok("GET", f"/sessions/{sid}/statements/{slow['id']}")["state"] == "running", 30,
               "the slow statement to run")
    assert node.ok("GET", f"/sessions/{sid}/state")["state"] == "busy"
    wait_until(lambda: node.call("POST", f"/sessions/{sid}/statements", {"code": "SELECT 1"})[0] == 503, 30,
               "the node's one query slot to be taken")
    status, doc, headers = node.call("POST", f"/sessions/{sid}/statements", {"code": "SELECT 1"})
    assert status == 503 and int(headers["Retry-After"]) > 0 and "retry" in doc["msg"]
    # cancelled through the other node: the record is shared, the runner ends the query
    assert nodes[0].ok("POST", f"/sessions/{sid}/statements/{slow['id']}/cancel") == {"msg": "canceled"}
    assert node.finished(sid, slow["id"], timeout=60)["state"] == "cancelled"
    wait_until(lambda: node.call("POST", f"/sessions/{sid}/statements", {"code": "SELECT 1 AS one"})[0] == 201, 60,
               "the slot to be free again")
    node.ok("DELETE", f"/sessions/{sid}")


def test_no_user_reaches_another_user_s_sessions(nodes: list[RestNode]) -> None:
    node = nodes[0]
    sid = node.ok("POST", "/sessions", {"kind": "sql"})["id"]
    statement = node.ok("POST", f"/sessions/{sid}/statements", {"code": "SELECT 1"})["id"]
    bob = basic(OTHER_USER, OTHER_PASSWORD)
    for method, path in (("GET", f"/sessions/{sid}"), ("GET", f"/sessions/{sid}/statements"),
                         ("GET", f"/sessions/{sid}/statements/{statement}"), ("GET", f"/sessions/{sid}/log"),
                         ("POST", f"/sessions/{sid}/statements"), ("POST", f"/sessions/{sid}/statements/{statement}/cancel"),
                         ("DELETE", f"/sessions/{sid}")):
        status, doc, _ = node.call(method, path, {"code": "SELECT 2"} if method == "POST" else None, authorization=bob)
        assert status == 403, (method, path, status, doc)
    assert sid not in [s["id"] for s in node.ok("GET", "/sessions", authorization=bob)["sessions"]]
    assert sid in [s["id"] for s in node.ok("GET", "/sessions")["sessions"]]
    status, doc, _ = node.call("POST", "/sessions", {"kind": "sql", "proxyUser": USER}, authorization=bob)
    assert status == 403 and "impersonate" in doc["msg"]
    for authorization in (None, basic(USER, "wrong"), "Bearer forged.token.value", "Negotiate abc"):
        status, doc, headers = node.call("GET", "/sessions", authorization=authorization)
        assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic"), (authorization, doc)
    node.ok("DELETE", f"/sessions/{sid}")


def test_hostile_requests_get_clear_errors_and_the_node_keeps_serving(nodes: list[RestNode]) -> None:
    node = nodes[0]
    sid = node.ok("POST", "/sessions", {"kind": "sql"})["id"]
    cases = [
        ("POST", "/sessions", b"{not json", 400),
        ("POST", "/sessions", b"[1, 2]", 400),
        ("POST", f"/sessions/{sid}/statements", b'{"code": 42}', 400),
        ("POST", f"/sessions/{sid}/statements", b'{"code": ""}', 400),
        ("POST", "/sessions", b'{"kind": "sql", "conf": {"bad name; DROP": "1"}}', 400),
        ("GET", "/sessions/abc", None, 404),
        ("GET", "/sessions/99999999999999", None, 404),
        ("GET", "/sessions/999999", None, 404),
        ("GET", f"/sessions/{sid}/statements/123456", None, 404),
        ("GET", "/sessions?from=-1", None, 400),
        ("GET", "/nothing/here", None, 404),
        ("PUT", "/sessions", b"{}", 405),
    ]
    for method, path, raw, expected in cases:
        status, doc, _ = node.call(method, path, raw=raw if raw is not None else None)
        assert status == expected and doc["msg"], (method, path, status, doc)
    # a body declared larger than the limit is refused before it is read (and the connection closed)
    target = urlsplit(node.url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    connection.putrequest("POST", f"/sessions/{sid}/statements")
    connection.putheader("Authorization", basic(USER, PASSWORD))
    connection.putheader("Content-Length", str(3 * 1024 * 1024))
    connection.endheaders(b"{}")
    response = connection.getresponse()
    assert response.status == 413 and "limited" in json.loads(response.read())["msg"]
    connection.close()
    done = node.finished(sid, node.ok("POST", f"/sessions/{sid}/statements", {"code": "SELECT 'still' AS here"})["id"])
    assert done["output"]["data"]["application/json"]["data"] == [["still"]]
    node.ok("DELETE", f"/sessions/{sid}")


@pytest.fixture(scope="module")
def rest_api(nodes: list[RestNode]) -> Any:
    """The API as its own OpenAPI document describes it (served without a login)."""
    import schemathesis

    status, doc, _ = nodes[0].call("GET", "/openapi.json", authorization=None)
    assert status == 200 and doc["openapi"].startswith("3.") and "/sessions" in doc["paths"]
    return schemathesis.openapi.from_url(nodes[0].url + "openapi.json")


@pytest.fixture(scope="module")
def alices_session(nodes: list[RestNode]) -> Iterator[int]:
    sid = nodes[0].ok("POST", "/sessions", {"kind": "sql", "name": "alice's"})["id"]
    nodes[0].finished(sid, nodes[0].ok("POST", f"/sessions/{sid}/statements", {"code": "SELECT 'private' AS x"})["id"])
    yield sid
    nodes[0].ok("DELETE", f"/sessions/{sid}")


def test_generated_requests_never_fail_the_server_or_cross_users(rest_api: Any, alices_session: int) -> None:
    """Property-based requests for every operation of the OpenAPI document (schemathesis),
    sent as another user: every answer is documented and never 5xx, and nothing of
    alice's session comes back."""
    from hypothesis import HealthCheck, given, settings

    bob = basic(OTHER_USER, OTHER_PASSWORD)
    operations = [result.ok() for result in rest_api.get_all_operations()]
    assert len(operations) == 16

    for operation in operations:
        @settings(max_examples=10, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(headers={"Authorization": bob})
            where = (case.method, case.formatted_path, response.status_code, response.text[:300])
            assert response.status_code < 500, where
            case.validate_response(response)
            assert "alice's" not in response.text and "private" not in response.text, where
            if response.status_code < 300 and "owner" in response.text:
                body = response.json()
                assert all(s.get("owner") == OTHER_USER for s in body.get("sessions", [body])), where

        check()


# -- batches ---------------------------------------------------------------------------------

BATCH_JOB = str(Path(__file__).with_name("batch_job.py"))
BATCH_CONF = {"spark.driver.memory": "512m", "spark.ui.enabled": "false"}


@dataclass
class BatchNode:
    nodes: list[RestNode]
    args: tuple[str, ...]

    @property
    def rest(self) -> RestNode:
        return self.nodes[1]

    def restart(self) -> None:
        assert stop_node(self.rest.node) == 0
        started = start_node(self.rest.node.work_dir, *self.args)
        self.nodes[1] = RestNode(started, _rest_url(started))


@pytest.fixture(scope="module")
def batch_node(users: Path, zookeeper: ZooKeeperServer, nodes: list[RestNode]) -> BatchNode:
    """The node that runs batches: the second one, started again as it was started."""
    port = str(urlsplit(nodes[1].node.uri).port)
    return BatchNode(nodes, (*_node_args(users, zookeeper), *BATCH_ARGS, "--port", port))


def _batch_state(node: RestNode, batch_id: int) -> str:
    return str(node.ok("GET", f"/batches/{batch_id}/state")["state"])


def _wait_state(node: RestNode, batch_id: int, states: tuple[str, ...], timeout: float = 180) -> str:
    wait_until(lambda: _batch_state(node, batch_id) in states, timeout, f"batch {batch_id} to be {'/'.join(states)}")
    return _batch_state(node, batch_id)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_pyspark_batch_writes_a_table_that_flight_sql_reads(batch_node: BatchNode, nodes: list[RestNode],
                                                               tmp_path: Path) -> None:
    node = batch_node.rest
    out = tmp_path / "written"
    created = node.ok("POST", "/batches", {"file": BATCH_JOB, "args": ["write", str(out)], "conf": BATCH_CONF,
                                           "name": "writer"})
    assert created["state"] in ("starting", "running") and created["owner"] == USER and created["name"] == "writer"
    # any node answers for the batch: the first of the other nodes follows it to its end
    assert _wait_state(nodes[0], created["id"], ("success", "dead")) == "success", \
        nodes[0].ok("GET", f"/batches/{created['id']}/log?size=200")
    assert nodes[0].ok("GET", f"/batches/{created['id']}")["state"] == "success"
    log = nodes[1].ok("GET", f"/batches/{created['id']}/log?from=0&size=1000")
    assert any("batch job wrote 1000 rows" in line for line in log["log"]) and log["total"] == len(log["log"])
    with connect(node.node) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*), sum(doubled) FROM parquet.`{out}`")
        assert cur.fetchone() == (1000, 999000)
    assert created["id"] in [b["id"] for b in nodes[1].ok("GET", "/batches")["sessions"]]
    bob = basic(OTHER_USER, OTHER_PASSWORD)
    for method, path in (("GET", f"/batches/{created['id']}"), ("GET", f"/batches/{created['id']}/log"),
                         ("DELETE", f"/batches/{created['id']}")):
        assert node.call(method, path, authorization=bob)[0] == 403
    assert created["id"] not in [b["id"] for b in node.ok("GET", "/batches", authorization=bob)["sessions"]]
    status, doc, _ = node.call("POST", "/batches", {"file": BATCH_JOB, "conf": {"bad key!": "1"}})
    assert status == 400 and "setting" in doc["msg"]
    status, doc, _ = nodes[0].call("POST", "/batches", {"file": BATCH_JOB})  # batches are off on the first node
    assert status == 403 and "--rest-batches" in doc["msg"]


def test_batches_are_killed_with_delete_and_a_full_node_answers_503(batch_node: BatchNode, tmp_path: Path) -> None:
    node = batch_node.rest
    never = tmp_path / "never"
    ids = [node.ok("POST", "/batches", {"file": BATCH_JOB, "args": ["wait", str(never)], "conf": BATCH_CONF})["id"]
           for _ in range(2)]
    status, doc, headers = node.call("POST", "/batches", {"file": BATCH_JOB, "args": ["wait", str(never)]})
    assert status == 503 and int(headers["Retry-After"]) > 0
    for batch_id in ids:
        _wait_state(node, batch_id, ("running",))
    pids = [_pid(node, batch_id) for batch_id in ids]
    for batch_id in ids:
        assert node.ok("DELETE", f"/batches/{batch_id}") == {"msg": "deleted"}
    for batch_id in ids:
        assert _wait_state(node, batch_id, ("killed",), timeout=60) == "killed"
    wait_until(lambda: not any(_alive(pid) for pid in pids), 60, "the killed drivers to end")


def _pid(node: RestNode, batch_id: int) -> int:
    """The batch's wrapper process, found by the name it runs under (the API does not show pids)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"flightsql-batch-{batch_id}".encode() + b"\0" in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError(f"no process of batch {batch_id}")


def test_a_batch_outlives_a_restart_of_its_node(batch_node: BatchNode, nodes: list[RestNode], tmp_path: Path) -> None:
    release, never = tmp_path / "release", tmp_path / "never"
    node = batch_node.rest
    kept = node.ok("POST", "/batches", {"file": BATCH_JOB, "args": ["wait", str(release)], "conf": BATCH_CONF})["id"]
    lost = node.ok("POST", "/batches", {"file": BATCH_JOB, "args": ["wait", str(never)], "conf": BATCH_CONF})["id"]
    for batch_id in (kept, lost):
        _wait_state(node, batch_id, ("running",))
    kept_pid, lost_pid = _pid(node, kept), _pid(node, lost)
    assert stop_node(node.node) == 0
    assert _alive(kept_pid), "the driver ended with its node"
    os.killpg(lost_pid, 9)  # this one dies while its node is away: no exit code is left
    wait_until(lambda: not _alive(lost_pid), 30, "the lost driver to end")
    batch_node.restart()
    node = batch_node.rest
    assert _batch_state(nodes[0], kept) == "running"
    assert _wait_state(nodes[0], lost, ("dead",), timeout=60) == "dead"
    assert any("without an exit code" in line for line in nodes[0].ok("GET", f"/batches/{lost}/log?size=1000")["log"])
    release.touch()
    assert _wait_state(nodes[1], kept, ("success", "dead")) == "success"
    assert any("batch job released" in line for line in node.ok("GET", f"/batches/{kept}/log?size=1000")["log"])
