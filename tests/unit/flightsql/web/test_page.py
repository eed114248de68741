"""The status model, its HTML (escaping first), and the HTTP server that serves it."""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Iterator

import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flightmanager.errors import FlightManagerError
from flightmanager.lifecycle import Life
from flightmanager.records import QueryRecord
from flightmanager.registry import MemoryRegistry
from flightmanager.query import QueryState
from flightmanager.status import ClusterStatus, NodeStatus, QueryStatus, Served, StreamTally, merge
from flightsql.web import page
from flightsql.web.server import StatusServer

NOW = 1_795_401_000.0
THIS = NodeStatus("node-a:31337", "grpc://node-a:31337", "node-a", "http://node-a:8080/")
OTHER = NodeStatus("node-b:31337", "grpc://node-b:31337", "node-b", None)

SCRIPT = "SELECT '<script>alert(1)</script>' AS x, \"</pre><img src=x onerror=alert(2)>\" AS y"


def query(query_id: str = "a" * 32, **changes: object) -> QueryStatus:
    fields: dict[str, object] = dict(
        query_id=query_id, owner="alice", sql="SELECT 1", state="FINISHED", coordinator=THIS.node_id,
        created=NOW - 10, finished=NOW - 8,
    )
    fields.update(changes)
    return QueryStatus(**fields)  # type: ignore[arg-type]


def status(*queries: QueryStatus, nodes: tuple[NodeStatus, ...] = (THIS, OTHER)) -> ClusterStatus:
    return ClusterStatus(THIS, NOW, nodes, tuple(queries))


# -- escaping ---------------------------------------------------------------------------
def test_sql_user_and_error_text_cannot_inject_markup() -> None:
    hostile = query(
        sql=SCRIPT, owner="<b onmouseover=alert(3)>mallory</b>", state="FAILED",
        error="failed: <iframe src=javascript:alert(4)>", served={"<i>node</i>": Served(5, 10, 1)},
    )
    rendered = page.render(status(hostile), "0.1.0", "n0nce")
    assert "<script>alert(1)" not in rendered
    assert "<img src=x" not in rendered
    assert "<b onmouseover" not in rendered and "<iframe" not in rendered and "<i>node" not in rendered
    assert html.escape(SCRIPT) in rendered  # shown as text, whole
    assert "&lt;b onmouseover=alert(3)&gt;mallory&lt;/b&gt;" in rendered
    assert rendered.count("<script") == 1  # the page's own, carrying the nonce
    assert '<script nonce="n0nce">' in rendered


def test_attribute_values_are_quoted_and_escaped() -> None:
    rendered = page.render(status(query(query_id='q"><script>x</script>')), "0.1.0", "n")
    assert 'data-query="q&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in rendered
    assert rendered.count("<script") == 1


def test_links_to_nodes_take_http_only() -> None:
    evil = NodeStatus("node-c:1", "grpc://c:1", "c", "javascript:alert(5)")
    rendered = page.render(status(nodes=(THIS, evil)), "0.1.0", "n")
    assert "javascript:alert(5)" in rendered  # shown as text...
    assert 'href="javascript:' not in rendered  # ...never as a link
    assert '<a href="http://node-a:8080/">' in rendered


def test_long_sql_is_cut_on_the_page() -> None:
    rendered = page.render(status(query(sql="SELECT " + "x" * 10_000)), "0.1.0", "n")
    assert "x" * page.SQL_SHOWN not in rendered
    assert "x" * (page.SQL_SHOWN - 10) in rendered


def test_page_lists_nodes_running_and_recent_queries() -> None:
    running = query("r" * 32, state="RUNNING", finished=None, sql="SELECT slow()")
    done = query("d" * 32, served={THIS.node_id: Served(1500, 3 * 1024 * 1024, 2), OTHER.node_id: Served(1, 10, 1)})
    main = page.main(status(running, done))
    sections = re.findall(r"<h2>(.*?)</h2>", main)
    assert sections == ["Live nodes (2)", "Running queries (1)", "Recent queries (1)"]
    running_table = main.split('<table id="running">')[1].split("</table>")[0]
    assert "SELECT slow()" in running_table and "10.0 s" in running_table
    recent_table = main.split('<table id="recent">')[1].split("</table>")[0]
    assert "1,500 rows, 3.0 MiB" in recent_table and "(2 streams)" in recent_table
    assert "1 row, 10 B" in recent_table and "(1 stream)" in recent_table
    assert "2.0 s" in recent_table
    assert "node-b:31337" in main.split('<table id="nodes">')[1]


def test_an_expired_result_shows_what_it_was() -> None:
    rendered = page.main(status(query(state="EXPIRED", outcome="FAILED", error="boom")))
    assert 'state-EXPIRED">EXPIRED</span><br><span class="muted">was FAILED</span>' in rendered


def test_durations_and_sizes_read_well() -> None:
    assert [page.duration(s) for s in (0.0042, 3.25, 125, 7300)] == ["4 ms", "3.2 s", "2 min 5 s", "2 h 1 min"]
    assert [page.size(n) for n in (0, 1023, 1536, 5 * 1024**3)] == ["0 B", "1023 B", "1.5 KiB", "5.0 GiB"]
    assert page.clock(NOW - 10, NOW) == "02:29:50"  # today: the time (UTC)
    assert page.clock(NOW - 3 * 3600, NOW) == "2026-11-22 23:30:00"  # another day: with its date


# -- the model ---------------------------------------------------------------------------
def test_registry_state_wins_and_this_node_reports_its_own_serving_live() -> None:
    shared = query(state="FINISHED", finished=NOW - 1, served={THIS.node_id: Served(10, 100, 1), OTHER.node_id: Served(7, 70, 1)})
    mine = query(state="RUNNING", finished=None, served={THIS.node_id: Served(25, 250, 2)})
    (merged,) = merge([shared], [mine], THIS.node_id)
    assert merged.state == "FINISHED" and merged.finished == NOW - 1
    assert merged.served == {THIS.node_id: Served(25, 250, 2), OTHER.node_id: Served(7, 70, 1)}


def test_queries_the_registry_forgot_are_listed_as_this_node_remembers_them() -> None:
    expired = query("e" * 32, state="EXPIRED", outcome="FINISHED", created=NOW - 100)
    registry = [query("r" * 32, state="RUNNING", finished=None, created=NOW - 200), query("f" * 32, created=NOW - 5)]
    merged = merge(registry, [expired], THIS.node_id)
    # running first; then newest first
    assert [q.query_id[0] for q in merged] == ["r", "f", "e"]


def test_recent_queries_are_bounded_running_ones_never() -> None:
    registry = [query(f"{i:032d}", created=NOW - i) for i in range(10)]
    registry += [query(f"r{i:031d}", state="RUNNING", finished=None, created=NOW - 100 - i) for i in range(3)]
    merged = merge(registry, [], THIS.node_id, recent=4)
    assert sum(q.running for q in merged) == 3
    assert [q.query_id for q in merged if not q.running] == [f"{i:032d}" for i in range(4)]


def test_status_as_json() -> None:
    doc = json.loads(json.dumps(status(
        query("r" * 32, state="RUNNING", finished=None),
        query(served={THIS.node_id: Served(3, 30, 1), OTHER.node_id: Served(4, 40, 1)}),
    ).to_dict()))
    assert doc["node"]["node_id"] == THIS.node_id
    assert [n["node_id"] for n in doc["nodes"]] == [THIS.node_id, OTHER.node_id]
    (running,) = doc["running"]
    assert running["state"] == "RUNNING" and running["finished"] is None and running["duration"] == 10.0
    (recent,) = doc["recent"]
    assert recent["user"] == "alice" and recent["sql"] == "SELECT 1"
    assert recent["served"][OTHER.node_id] == {"rows": 4, "bytes": 40, "streams": 1}
    assert recent["rows_served"] == 7 and recent["bytes_served"] == 70


def test_a_record_reports_what_its_streams_served() -> None:
    life = Life("q" * 32, "n1", "n1", frozenset({"n1"}), 600.0, NOW - 3, NOW + 600)
    record = QueryRecord(life, "alice", "SELECT 2", pa.schema([]), False, MemoryRegistry())
    assert record.status("n1").served == {}
    record.tallies.extend([StreamTally(10, 100), StreamTally(5, 50)])
    record.life = replace(life, state=QueryState.FAILED, error=FlightManagerError("query failed: boom"), finished_at=NOW)
    mirrored = record.status("n1")
    assert mirrored.served == {"n1": Served(15, 150, 2)}
    assert (mirrored.state, mirrored.error, mirrored.duration(NOW + 50)) == ("FAILED", "query failed: boom", 3.0)


# -- the HTTP server ------------------------------------------------------------------------
class Source:
    """What the server shows; ``fail`` makes it raise like a node losing ZooKeeper."""

    def __init__(self) -> None:
        self.fail = False

    def __call__(self) -> ClusterStatus:
        if self.fail:
            raise ConnectionError("ZooKeeper unreachable")
        return status(query(sql=SCRIPT))


@pytest.fixture()
def server() -> Iterator[tuple[StatusServer, Source]]:
    import flightmanager.metrics  # noqa: F401 - registers the node's metrics

    source = Source()
    running = StatusServer("127.0.0.1", 0, source, "9.9.9").start()
    yield running, source
    running.stop()


def get(server: StatusServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_server_serves_the_page_with_a_strict_policy(server: tuple[StatusServer, Source]) -> None:
    code, headers, body = get(server[0], "/")
    assert code == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    nonce = re.search(r"script-src 'nonce-([^']+)'", headers["Content-Security-Policy"])
    assert nonce and f'<script nonce="{nonce[1]}">' in body.decode()
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert html.escape(SCRIPT) in body.decode() and "version 9.9.9" in body.decode()
    _, again, _ = get(server[0], "/")
    assert again["Content-Security-Policy"] != headers["Content-Security-Policy"]  # a fresh nonce each time


def test_server_serves_json_and_metrics(server: tuple[StatusServer, Source]) -> None:
    code, headers, body = get(server[0], "/api/status")
    assert code == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["version"] == "9.9.9" and doc["recent"][0]["sql"] == SCRIPT
    code, headers, body = get(server[0], "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {"flightsql_result_rows_served", "flightsql_queries_ended", "flightsql_spool_disk_bytes"} <= names


def test_server_answers_404_head_and_503(server: tuple[StatusServer, Source]) -> None:
    running, source = server
    assert get(running, "/nope")[0] == 404
    assert get(running, "/api/status/extra")[0] == 404
    code, headers, body = get(running, "/api/status", method="HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0
    source.fail = True
    code, _, body = get(running, "/api/status")
    assert code == 503 and b"ConnectionError" in body and b"unreachable" not in body
    assert get(running, "/metrics")[0] == 200  # metrics need no cluster view


def test_a_stopped_server_lets_its_port_go() -> None:
    running = StatusServer("127.0.0.1", 0, Source(), "1").start()
    port = running.port
    running.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
    assert running.url() == f"http://127.0.0.1:{port}/"


def test_a_draining_node_is_marked() -> None:
    from dataclasses import replace

    draining = replace(OTHER, draining=True)
    rendered = page.render(status(nodes=(THIS, draining)), "0.1.0", "n")
    row = rendered.split("node-b:31337", 1)[1].split("</tr>", 1)[0]
    assert ">draining<" in row
    assert ">draining<" not in rendered.split("node-b:31337", 1)[0]
    assert draining.to_dict()["draining"] is True and THIS.to_dict()["draining"] is False
