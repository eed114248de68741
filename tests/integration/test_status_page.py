"""Two real nodes on one ZooKeeper, watched as an operator watches them: the status page
(in a real headless browser), its JSON, Prometheus metrics, and the JSON log lines."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.conftest import (
    OTHER_PASSWORD,
    OTHER_USER,
    PASSWORD,
    USER,
    RunningNode,
    _add_user,
    connect,
    start_node,
    stop_node,
    wait_until,
)
from tests.integration.jdbc import jdbc_connect, jvm  # noqa: F401 - the fixture
from tests.integration.status import WatchedNode, basic, status_url
from tests.integration.zookeeper import running_zookeeper

pytestmark = pytest.mark.integration

#: two partitions over two nodes: each node holds and serves one
GOOD_SQL = "SELECT id, '<script>alert(1)</script>' AS tag FROM range(0, 1000, 1, 2)"
BAD_SQL = "SELECT assert_true(id < 5, 'id too large') FROM range(10)"
REFUSED_SQL = "SELECT * FROM no_such_table_here"  # refused before anything runs
BROWSERS = ("chromium", "chromium-browser", "chromium-headless-shell")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WatchedNode]]:
    base = tmp_path_factory.mktemp("status")
    users = base / "users"
    _add_user(users, USER, PASSWORD)
    _add_user(users, OTHER_USER, OTHER_PASSWORD)
    policy = base / "policy.json"  # alice is the operator: she sees every user's queries
    policy.write_text(json.dumps({"policies": [
        {"name": "operator", "users": [USER], "privileges": ["admin"]},
        {"name": "everyone else", "users": ["*"], "privileges": ["select", "modify", "create", "drop"]},
    ]}))
    with running_zookeeper(base / "zookeeper") as zookeeper:
        common = ("--users", str(users), "--policy", str(policy), *zookeeper.node_args("/status-test"),
                  "--http-port", "0", "--log-format", "json", "--conf", "spark.driver.memory=768m")
        with ThreadPoolExecutor(2) as pool:
            started = list(pool.map(lambda args: start_node(base / args[0], *common, *args[1:]),
                                    [("a", "--demo"), ("b",)]))
        yield [WatchedNode(node, status_url(node)) for node in started]
        codes = [stop_node(node) for node in started]
    assert codes == [0, 0], "\n".join(node.log()[-3000:] for node in started)


@pytest.fixture(scope="module")
def ran(nodes: list[WatchedNode]) -> dict[str, Any]:
    """One good and one failing query, both coordinated by the first node."""
    import adbc_driver_manager

    first = nodes[0]
    before = first.metrics()
    with connect(first.node) as conn, conn.cursor() as cur:
        cur.execute(GOOD_SQL)
        assert cur.fetch_arrow_table().num_rows == 1000
        with pytest.raises(adbc_driver_manager.Error, match="id too large"):
            cur.execute(BAD_SQL)
            cur.fetch_arrow_table()
        with pytest.raises(adbc_driver_manager.Error, match="no_such_table_here"):
            cur.execute(REFUSED_SQL)
    for node in nodes:
        wait_until(lambda: (node.query(BAD_SQL) or {}).get("state") == "FAILED", timeout=30,
                   what=f"the failed query on {node.url}")
    return {"before": before}


def test_every_node_lists_the_queries_with_sql_user_state_and_rows_served(
    nodes: list[WatchedNode], ran: dict[str, Any]
) -> None:
    ids = [node.node_id for node in nodes]
    for node in nodes:  # the coordinator and the other node see the same
        status = node.get_json("api/status")
        assert sorted(n["node_id"] for n in status["nodes"]) == sorted(ids)
        assert all(n["status_uri"].startswith("http://127.0.0.1:") for n in status["nodes"])
        # each node serves one partition; each one's figure reaches the other through ZooKeeper
        wait_until(lambda: set((node.query(GOOD_SQL) or {}).get("served", {})) == set(ids), timeout=30,
                   what=f"what every node served, on {node.url}")
        good = node.query(GOOD_SQL)
        assert good is not None
        assert (good["user"], good["state"], good["coordinator"], good["error"]) == (USER, "FINISHED", ids[0], None)
        assert good["rows_served"] == 1000
        assert all(good["served"][n]["rows"] == 500 and good["served"][n]["streams"] == 1 for n in ids)
        assert good["finished"] >= good["created"] and good["duration"] >= 0
        bad = node.query(BAD_SQL)
        assert bad is not None and bad["user"] == USER and bad["coordinator"] == ids[0]
        assert "id too large" in bad["error"]


def test_a_statement_refused_before_it_ran_is_listed_with_its_error(
    nodes: list[WatchedNode], ran: dict[str, Any]
) -> None:
    refused = nodes[0].query(REFUSED_SQL)  # the node that refused it lists it
    assert refused is not None, nodes[0].get_json("api/status")["recent"]
    assert (refused["user"], refused["state"]) == (USER, "FAILED")
    assert "TABLE_OR_VIEW_NOT_FOUND" in refused["error"] and "no_such_table_here" in refused["error"]
    assert refused["rows_served"] == 0


def test_metrics_are_prometheus_and_count_what_was_served(nodes: list[WatchedNode], ran: dict[str, Any]) -> None:
    first = nodes[0]
    label = (("node", first.node_id),)
    after = first.metrics()
    before = ran["before"]

    def moved(name: str, labels: tuple[tuple[str, str], ...] = label) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert moved("flightsql_result_rows_served_total") >= 500  # its half of the good query
    assert moved("flightsql_result_bytes_served_total") > 0
    assert moved("flightsql_queries_started_total", (("kind", "job"), *label)) >= 2
    assert moved("flightsql_queries_ended_total", (*label, ("state", "FINISHED"))) >= 1
    assert moved("flightsql_queries_ended_total", (*label, ("state", "FAILED"))) >= 1
    assert after[("flightsql_queries_running", label)] == 0
    assert after[("flightsql_cluster_live_nodes", label)] == 2
    assert after[("flightsql_spool_memory_budget_bytes", label)] == 512 * 1024 * 1024
    second = nodes[1].metrics()
    assert second[("flightsql_result_rows_served_total", (("node", nodes[1].node_id),))] >= 500


def test_unknown_paths_are_not_found(nodes: list[WatchedNode]) -> None:
    for path in ("nope", "api/status/x", "metrics/", "index.html"):
        code, _ = nodes[0].get(path)
        assert code == 404, path


def _browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def test_the_page_renders_in_a_real_browser(nodes: list[WatchedNode], ran: dict[str, Any], tmp_path: Path) -> None:
    browser = _browser()
    if browser is None:
        pytest.skip(f"no headless browser on PATH (looked for {', '.join(BROWSERS)}; Debian: apt-get install chromium)")
    second = nodes[1]  # a node that neither coordinated nor was asked: the cluster-wide view
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=7000"]
    # an operator's browser, logged in (credentials in the URL: Basic on every request of the page)
    url = second.url.replace("http://", f"http://{USER}:{PASSWORD}@")
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    assert 'data-refreshes="' in dom  # the page's script ran (its policy allowed it) and refreshed the view
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # the SQL text, shown as text
    assert "<script>alert(1)" not in dom  # never as markup
    assert "id too large" in dom and ">FAILED<" in dom and ">FINISHED<" in dom
    for node in nodes:
        assert node.node_id in dom.split('<table id="nodes">')[1].split("</table>")[0]
    screenshot = tmp_path / "status.png"
    subprocess.run([*flags, "--hide-scrollbars", "--window-size=1400,1000", f"--screenshot={screenshot}", url],
                   capture_output=True, timeout=120, check=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000


def test_log_lines_about_a_query_carry_its_id(nodes: list[WatchedNode], ran: dict[str, Any]) -> None:
    first = nodes[0]
    good, bad = first.query(GOOD_SQL), first.query(BAD_SQL)
    assert good is not None and bad is not None
    wait_until(lambda: any(r.get("query") == bad["query_id"] and r["level"] == "WARNING" for r in first.log_records()),
               timeout=20, what="the failure's log line")
    records = first.log_records()
    about_good = [r for r in records if r.get("query") == good["query_id"]]
    messages = [r["message"] for r in about_good]
    assert any(GOOD_SQL in m and USER in m for m in messages), messages  # registered, with its SQL
    assert any("served 500 rows" in m for m in messages), messages
    assert any("finished" in m for m in messages), messages
    assert all(r["node"] == first.node_id and r["logger"].startswith("flightmanager") for r in about_good)
    failure = [r for r in records if r.get("query") == bad["query_id"] and r["level"] == "WARNING"]
    assert failure and "id too large" in failure[0]["message"]
    # no line names a query without saying so in its query field
    for record in records:
        for query_id in (good["query_id"], bad["query_id"]):
            if query_id in record["message"] and record["logger"].startswith(("flightmanager", "flightsql")):
                assert record.get("query") == query_id, record
    # the other node's lines about its share carry the same id
    second = [r for r in nodes[1].log_records() if r.get("query") == good["query_id"]]
    assert any("served 500 rows" in r["message"] for r in second)
    # Spark's JVM writes JSON lines too (its task failure for the bad query, with the stack on one line)
    jvm = [r for r in records if r["logger"].startswith("org.apache.spark")]
    assert any("id too large" in r.get("exception", "") + r["message"] for r in jvm)


# -- who may look ----------------------------------------------------------------------------

BOB_SQL = "SELECT id AS bobs_own_query FROM range(0, 10, 1, 2)"


@pytest.mark.parametrize("path", ["", "api/status", "metrics"])
def test_every_path_asks_for_a_login(nodes: list[WatchedNode], path: str) -> None:
    for authorization in (None, basic(USER, "wrong-password"), basic("mallory", PASSWORD), "Bearer v2.forged.token",
                          "Basic !!!"):
        request = urllib.request.Request(nodes[0].url + path)
        if authorization is not None:
            request.add_header("Authorization", authorization)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=20)
        assert refused.value.code == 401, (path, authorization)
        assert refused.value.headers["WWW-Authenticate"].startswith('Basic realm="flightsql"')
        body = refused.value.read().decode()
        assert "SELECT" not in body and "Traceback" not in body


def test_users_see_their_own_queries_and_admins_everyones(nodes: list[WatchedNode], ran: dict[str, Any]) -> None:
    import pyarrow.flight as flight

    first = nodes[0]
    with connect(first.node, OTHER_USER, OTHER_PASSWORD) as conn, conn.cursor() as cur:
        cur.execute(BOB_SQL)
        assert len(cur.fetchall()) == 10
    client = flight.connect(first.node.uri)
    _, token = client.authenticate_basic_token(OTHER_USER, OTHER_PASSWORD)  # bob's Flight login
    for bob in (basic(OTHER_USER, OTHER_PASSWORD), token.decode()):
        code, body = first.get("api/status", authorization=bob)
        assert code == 200, body
        assert BOB_SQL in body and GOOD_SQL not in body and BAD_SQL not in body
        code, page_html = first.get("", authorization=bob)
        assert code == 200 and "bobs_own_query" in page_html and "alert(1)" not in page_html
    wait_until(lambda: first.query(BOB_SQL) is not None, what="bob's query on the admin's view")
    assert first.query(GOOD_SQL) is not None  # alice, an admin of the policy, sees both


def _listening_ports(pid: int) -> dict[int, str]:
    """TCP ports a process listens on, with the address each is bound to."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ports = {}
    for line in out.splitlines():
        if f"pid={pid}," in line:
            address, _, port = line.split()[3].rpartition(":")
            ports[int(port)] = address.strip("[]").removeprefix("::ffff:")  # an IPv4 address in IPv6 form
    return ports


def _jvm_of(node: RunningNode) -> int:
    children = Path(f"/proc/{node.process.pid}/task/{node.process.pid}/children").read_text().split()
    for child in children:
        if "java" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
            return int(child)
    raise AssertionError("no JVM under the node")


def _spark_ui(port: int, path: str = "/api/v1/applications") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except (urllib.error.URLError, http.client.HTTPException, OSError):  # not an HTTP server at all
        return 0, ""


def test_spark_ui_is_off_by_default(nodes: list[WatchedNode]) -> None:
    ports = _listening_ports(_jvm_of(nodes[0].node))
    assert ports, "the JVM listens (py4j at least)"
    assert all(_spark_ui(port)[0] != 200 for port in ports), ports


@pytest.fixture(scope="module")
def open_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WatchedNode]:
    base = tmp_path_factory.mktemp("status-open")
    _add_user(base / "users", USER, PASSWORD)
    node = start_node(base / "node", "--users", str(base / "users"), "--http-port", "0", "--status-open",
                      "--spark-ui", "--log-format", "json", "--conf", "spark.driver.memory=768m")
    yield WatchedNode(node, status_url(node), authorization=None)
    assert stop_node(node) == 0


def test_an_open_page_serves_without_a_login(open_node: WatchedNode) -> None:
    with connect(open_node.node) as conn, conn.cursor() as cur:
        cur.execute(GOOD_SQL)
        assert cur.fetch_arrow_table().num_rows == 1000
    for path in ("", "api/status", "metrics"):
        code, _ = open_node.get(path)
        assert code == 200, path
    assert open_node.query(GOOD_SQL) is not None


def test_an_asked_for_spark_ui_listens_on_the_host_and_names_no_sql(open_node: WatchedNode) -> None:
    with connect(open_node.node) as conn, conn.cursor() as cur:
        cur.execute(GOOD_SQL)
        cur.fetch_arrow_table()
    ports = _listening_ports(_jvm_of(open_node.node))
    ui = [port for port in ports if _spark_ui(port)[0] == 200]
    assert len(ui) == 1, ports
    assert ports[ui[0]] == "127.0.0.1"  # the node's --host, not every interface
    (app,) = json.loads(_spark_ui(ui[0])[1])
    code, jobs = _spark_ui(ui[0], f"/api/v1/applications/{app['id']}/jobs")
    assert code == 200 and "flightsql query" in jobs
    assert "alert(1)" not in jobs and "range(0, 1000" not in jobs and USER not in jobs


def test_a_repeated_small_query_is_answered_from_kept_answers_until_its_table_changes(
    nodes: list[WatchedNode],
) -> None:
    """The second ask of a small deterministic query keeps its answer; later asks get it
    without Spark; a write into its table, on any node, drops it."""
    first, second = nodes
    label = (("node", first.node_id),)

    def counted(outcome: str) -> float:
        return first.metrics().get(("flightsql_result_cache_total", (*label, ("outcome", outcome))), 0.0)

    def ask(node: WatchedNode, sql: str) -> list[tuple]:  # type: ignore[type-arg]
        with connect(node.node) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()]

    for node in nodes:  # these nodes keep their own metastores: a table of that name on each
        ask(node, "CREATE TABLE kept_t USING parquet AS SELECT id AS x FROM range(0, 100, 1, 2)")
    sql = "SELECT count(*), sum(x) FROM kept_t"
    kept, hits = counted("kept"), counted("hit")
    assert [ask(first, sql) for _ in range(4)] == [[(100, 4950)]] * 4
    assert counted("kept") == kept + 1 and counted("hit") == hits + 2

    ask(first, "INSERT INTO kept_t VALUES (1000)")  # a write through the cluster: the answer is stale
    assert ask(first, sql) == [(101, 5950)]
    assert counted("hit") == hits + 2

    ask(first, sql)  # kept again (the second ask since the write)
    hits = counted("hit")
    ask(second, "INSERT INTO kept_t VALUES (1)")  # a write into a table of that name on the other node
    assert ask(first, sql) == [(101, 5950)] and counted("hit") == hits  # dropped: versions are the cluster's

    volatile = "SELECT count(*) FROM kept_t WHERE rand() < 2"
    kept = counted("kept")
    assert [ask(first, volatile) for _ in range(3)] == [[(101,)]] * 3
    assert counted("kept") == kept  # never kept


def test_the_jdbc_driver_reads_every_endpoint_at_its_own_node(nodes: list[WatchedNode], jvm: Any) -> None:  # noqa: F811
    """A BI tool's large result from the two nodes: the Flight SQL JDBC driver logs in at the
    first node, reads each endpoint at the node its location names (logging in there as
    well), and gets every row once."""
    sql = "SELECT id, CAST(id AS STRING) AS label FROM range(0, 1000000, 1, 8) /* jdbc */"
    connection = jdbc_connect(nodes[0].node)
    try:
        result = connection.createStatement().executeQuery(sql)
        count = total = 0
        while result.next():
            total += result.getLong(1)
            count += 1
        result.close()
    finally:
        connection.close()
    assert (count, total) == (1000000, sum(range(1000000)))
    ids = [node.node_id for node in nodes]
    wait_until(lambda: set((nodes[0].query(sql) or {}).get("served", {})) == set(ids), timeout=30,
               what="both nodes to have served the JDBC read")
    served = nodes[0].query(sql)["served"]  # type: ignore[index]
    assert sum(served[n]["rows"] for n in ids) == 1000000
    assert all(served[n]["rows"] > 0 and served[n]["streams"] >= 1 for n in ids), served
