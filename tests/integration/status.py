"""A node's status page, API and metrics, read as an operator reads them."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import PASSWORD, USER, RunningNode


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class WatchedNode:
    node: RunningNode
    url: str  # of the status page
    #: the Authorization header the requests send (an operator logged in as alice)
    authorization: str | None = basic(USER, PASSWORD)

    @property
    def node_id(self) -> str:
        return self.get_json("api/status")["node"]["node_id"]

    def get(self, path: str, authorization: str | None = "") -> tuple[int, str]:
        request = urllib.request.Request(self.url + path)
        header = self.authorization if authorization == "" else authorization
        if header is not None:
            request.add_header("Authorization", header)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def get_json(self, path: str) -> Any:
        code, body = self.get(path)
        assert code == 200, body
        return json.loads(body)

    def query(self, sql: str) -> dict[str, Any] | None:
        status = self.get_json("api/status")
        return next((q for q in status["running"] + status["recent"] if q["sql"] == sql), None)

    def served(self, query_id: str) -> dict[str, dict[str, int]]:
        """Per node id, what that node served of the query (rows, bytes, streams)."""
        status = self.get_json("api/status")
        found = next((q for q in status["running"] + status["recent"] if q["query_id"] == query_id), None)
        return {} if found is None else dict(found["served"])

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        code, body = self.get("metrics")
        assert code == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }

    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.node.log_lines) if line.startswith("{")]


def status_url(node: RunningNode) -> str:
    """The status page's URL, as the node logs it (in either log format)."""
    for line in node.log_lines:
        message = json.loads(line)["message"] if line.startswith("{") else line
        if "status page at " in message:
            return message.split("status page at ", 1)[1].split()[0]
    raise AssertionError("the node logged no status page URL:\n" + node.log()[-3000:])


def metric_total(nodes: list[WatchedNode], name: str, **labels: str) -> float:
    """The sum over ``nodes`` of a metric's samples that carry ``labels``."""
    total = 0.0
    for node in nodes:
        for (sample, sample_labels), value in node.metrics().items():
            if sample == name and all(dict(sample_labels).get(k) == v for k, v in labels.items()):
                total += value
    return total
