"""The status page as HTML: rendered on the server, every piece of text escaped.

SQL text, user names, error messages and node records are user input (or come from
ZooKeeper): they reach the page only through :func:`html.escape`, and links only
with an http(s) scheme.  The page needs no external assets.  A small inline script
(allowed by the response's Content-Security-Policy nonce, and nothing else is)
reloads the page's main part every few seconds; without JavaScript the page is
complete, just not live.
"""

from __future__ import annotations

import html
import time

from flightmanager.status import ClusterStatus, NodeStatus, QueryStatus

#: SQL text shown per query on the page (the JSON view has all of it)
SQL_SHOWN = 4000
REFRESH_SECONDS = 5

_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
header { background: #1d2330; color: #fff; padding: 12px 24px; display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header .meta { color: #b9c0cf; font-size: 13px; }
header a { color: #9cc3ff; }
main { padding: 8px 24px 32px; }
h2 { font-size: 15px; margin: 24px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid #e4e7ec; }
th { background: #eef0f4; font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: #4a5468; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre.sql { margin: 0; white-space: pre-wrap; word-break: break-word; max-height: 9em; overflow: auto; min-width: 18em; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #e4e7ec; }
.state-RUNNING, .state-PENDING { background: #dbe9ff; color: #0b4fb3; }
.state-FINISHED { background: #dcf5e3; color: #136c2e; }
.state-FAILED { background: #fde2e1; color: #a4161a; }
.state-CANCELLED { background: #fff1c2; color: #7a5900; }
.state-EXPIRED { background: #eceef2; color: #5b6477; }
.error { color: #a4161a; white-space: pre-wrap; overflow-wrap: anywhere; min-width: 12em; max-width: 28em; }
.muted { color: #6b7487; }
.empty { color: #6b7487; padding: 12px; background: #fff; }
ul.served { margin: 0; padding: 0; list-style: none; white-space: nowrap; }
"""

_SCRIPT = """
(function () {
  var refreshes = 0;
  function refresh() {
    // the origin names no credentials, even where the page was opened with user:password@ in its URL
    fetch(window.location.origin + window.location.pathname, {cache: "no-store", credentials: "same-origin"}).then(function (response) {
      if (!response.ok) { throw new Error(response.status); }
      return response.text();
    }).then(function (text) {
      var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("main");
      var current = document.querySelector("main");
      if (fresh && current) {
        refreshes += 1;
        fresh.setAttribute("data-refreshes", String(refreshes));
        current.replaceWith(fresh);
      }
    }).catch(function () {
      var stamp = document.getElementById("updated");
      if (stamp) { stamp.textContent = "node not answering; retrying"; }
    });
  }
  setInterval(refresh, REFRESH_MS);
})();
""".replace("REFRESH_MS", str(REFRESH_SECONDS * 1000))


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def utc(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + " UTC"


def clock(seconds: float, now: float) -> str:
    """A time as HH:MM:SS (UTC), with its date unless it is today's."""
    day, today = time.gmtime(seconds)[:3], time.gmtime(now)[:3]
    return time.strftime("%H:%M:%S" if day == today else "%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"  # pragma: no cover - the loop always returns


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _link(uri: str | None, text: str) -> str:
    if uri and uri.startswith(("http://", "https://")):
        return f'<a href="{_e(uri)}">{_e(text)}</a>'
    return _e(text) if uri else '<span class="muted">none</span>'


def _nodes(status: ClusterStatus) -> str:
    rows = []
    for node in status.nodes:
        this = ' <span class="muted">(this node)</span>' if node.node_id == status.node.node_id else ""
        if node.draining:
            this += ' <span class="state state-CANCELLED">draining</span>'
        if node.node_id == status.node.node_id and status.node.driver_restarts:
            times = status.node.driver_restarts
            this += f' <span class="state state-FAILED">Spark driver restarted {times} time{"s" if times > 1 else ""}</span>'
        rows.append(
            "<tr>"
            f"<td><code>{_e(node.node_id)}</code>{this}</td>"
            f"<td><code>{_e(node.public_uri)}</code></td>"
            f"<td>{_e(node.host)}</td>"
            f"<td>{_link(node.status_uri, node.status_uri or '')}</td>"
            "</tr>"
        )
    return (
        '<table id="nodes"><thead><tr><th>Node</th><th>Flight SQL</th><th>Host</th><th>Status page</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _served(query: QueryStatus) -> str:
    if not query.served:
        return '<span class="muted">nothing yet</span>'
    items = []
    for node_id, served in sorted(query.served.items()):
        streams = _plural(served.streams, "stream")
        items.append(
            f"<li><code>{_e(node_id)}</code>: {_plural(served.rows, 'row')}, {size(served.bytes)}"
            f' <span class="muted">({streams})</span></li>'
        )
    return f'<ul class="served">{"".join(items)}</ul>'


def _state(query: QueryStatus) -> str:
    badge = f'<span class="state state-{_e(query.state)}">{_e(query.state)}</span>'
    if query.outcome and query.outcome != query.state:
        badge += f'<br><span class="muted">was {_e(query.outcome)}</span>'
    progress = query.progress or {}
    if progress.get("queue_position") is not None:
        badge += f'<br><span class="muted">waiting for a slot: #{int(progress["queue_position"])}</span>'
    elif progress.get("tasks_total"):
        done, total = int(progress.get("tasks_done", 0)), int(progress["tasks_total"])
        badge += f'<br><span class="muted">{round(100 * done / total)}%: {done} of {total} tasks</span>'
    return badge


def _sql(sql: str) -> str:
    shown = sql if len(sql) <= SQL_SHOWN else sql[:SQL_SHOWN] + "\u2026"
    return f'<pre class="sql">{_e(shown)}</pre>'


def _queries(queries: tuple[QueryStatus, ...], now: float, element_id: str, empty: str) -> str:
    if not queries:
        return f'<p class="empty" id="{element_id}">{_e(empty)}</p>'
    rows = []
    for query in queries:
        rows.append(
            f'<tr data-query="{_e(query.query_id)}">'
            f'<td><code title="{_e(query.query_id)}">{_e(query.query_id[:12])}</code></td>'
            f"<td>{_state(query)}</td>"
            f"<td>{_e(query.owner)}</td>"
            f"<td>{_sql(query.sql)}</td>"
            f"<td><code>{_e(query.coordinator)}</code></td>"
            f'<td class="num" title="{_e(utc(query.created))}">{_e(clock(query.created, now))}</td>'
            f'<td class="num">{_e(duration(query.duration(now)))}</td>'
            f"<td>{_served(query)}</td>"
            f'<td class="error">{_e(query.error or "")}</td>'
            "</tr>"
        )
    head = (
        "<tr><th>Query</th><th>State</th><th>User</th><th>SQL</th><th>Coordinator</th>"
        "<th>Started (UTC)</th><th>Duration</th><th>Served by node</th><th>Error</th></tr>"
    )
    return f'<table id="{element_id}"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def main(status: ClusterStatus) -> str:
    """The part of the page that refreshes."""
    now = status.generated
    running, recent = status.running, status.recent
    return (
        "<main>"
        f'<p class="muted" id="updated">Updated {_e(utc(now))}; refreshes every {REFRESH_SECONDS} s.</p>'
        f"<h2>Live nodes ({len(status.nodes)})</h2>{_nodes(status)}"
        f"<h2>Running queries ({len(running)})</h2>"
        f"{_queries(running, now, 'running', 'No query is running.')}"
        f"<h2>Recent queries ({len(recent)})</h2>"
        f"{_queries(recent, now, 'recent', 'No query has finished yet.')}"
        "</main>"
    )


def render(status: ClusterStatus, version: str, nonce: str) -> str:
    """The whole page; ``nonce`` must match the Content-Security-Policy of the response."""
    node: NodeStatus = status.node
    return (
        "<!DOCTYPE html>"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Flight SQL node {_e(node.node_id)}</title>"
        f'<style nonce="{_e(nonce)}">{_STYLE}</style>'
        "</head><body>"
        "<header>"
        "<h1>Spark Flight SQL</h1>"
        f'<span class="meta">node <code>{_e(node.node_id)}</code> &middot; <code>{_e(node.public_uri)}</code>'
        f" &middot; version {_e(version)}</span>"
        '<span class="meta"><a href="api/status">JSON</a> &middot; <a href="metrics">metrics</a></span>'
        "</header>"
        f"{main(status)}"
        f'<script nonce="{_e(nonce)}">{_SCRIPT}</script>'
        "</body></html>"
    )
