"""Livy's REST shapes: session and statement states, objects and outputs.

Field names and states follow Apache Livy's REST API (``docs/rest-api.md`` of Livy);
docs/rest.md says where this gateway differs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

#: statement kinds a session takes: SQL only (Spark code never runs on a node's driver)
SQL_KINDS = ("sql",)
#: session kinds accepted at creation: "sql", or Livy's "shared" (the kind comes with each statement)
SESSION_KINDS = ("sql", "shared")


class SessionState(str, enum.Enum):
    NOT_STARTED = "not_started"
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    SHUTTING_DOWN = "shutting_down"
    ERROR = "error"
    DEAD = "dead"
    KILLED = "killed"
    SUCCESS = "success"


class StatementState(str, enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    AVAILABLE = "available"
    ERROR = "error"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (StatementState.AVAILABLE, StatementState.ERROR, StatementState.CANCELLED)


@dataclass
class Session:
    """A Livy session as recorded: its owner's Flight SQL session carries catalog, schema and
    settings from statement to statement, on any node."""

    id: int
    owner: str
    kind: str
    flight_session: str
    created: float
    name: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "owner": self.owner, "kind": self.kind, "flight_session": self.flight_session,
                "created": self.created, "name": self.name, "conf": self.conf, "log": self.log}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Session:
        return cls(int(doc["id"]), str(doc["owner"]), str(doc["kind"]), str(doc["flight_session"]),
                   float(doc["created"]), doc.get("name"), dict(doc.get("conf") or {}), list(doc.get("log") or []))

    def livy(self, state: SessionState) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "appId": None, "owner": self.owner, "proxyUser": self.owner,
                "kind": self.kind, "state": state.value, "log": self.log[-100:],
                "appInfo": {"driverLogUrl": None, "sparkUiUrl": None}}


@dataclass
class Statement:
    """A statement as recorded: where it runs, how far it got, and its output once done."""

    id: int
    code: str
    state: StatementState
    node: str
    progress: float = 0.0
    started: int = 0
    completed: int = 0
    output: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "code": self.code, "state": self.state.value, "node": self.node,
                "progress": self.progress, "started": self.started, "completed": self.completed,
                "output": self.output}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Statement:
        return cls(int(doc["id"]), str(doc["code"]), StatementState(doc["state"]), str(doc["node"]),
                   float(doc.get("progress") or 0.0), int(doc.get("started") or 0), int(doc.get("completed") or 0),
                   doc.get("output"))

    def livy(self) -> dict[str, Any]:
        return {"id": self.id, "code": self.code, "state": self.state.value, "output": self.output,
                "progress": self.progress, "started": self.started, "completed": self.completed}


def ok_output(execution_count: int, schema: pa.Schema, rows: list[list[Any]], total: int | None,
              flight: dict[str, Any]) -> dict[str, Any]:
    """Livy's SQL interpreter output: the result's Spark schema and its first rows; beyond
    Livy, ``flight`` (every endpoint and ticket, to read the whole result with any Flight
    client) and whether rows were left out."""
    return {
        "status": "ok",
        "execution_count": execution_count,
        "data": {"application/json": {"schema": spark_schema(schema), "data": rows}},
        "truncated": total is None or total > len(rows),
        "flight": flight,
    }


def error_output(execution_count: int, name: str, message: str) -> dict[str, Any]:
    return {"status": "error", "execution_count": execution_count, "ename": name, "evalue": message,
            "traceback": []}


def spark_schema(schema: pa.Schema) -> dict[str, Any]:
    """The schema as Spark's StructType JSON, as Livy's SQL interpreter gives it."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema).jsonValue()


def json_value(value: Any) -> Any:
    """A result value as JSON: numbers, strings and booleans as they are; decimals, dates and
    times as strings; bytes as base64; lists and maps as JSON lists and objects."""
    import base64
    import datetime
    import decimal

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (decimal.Decimal, datetime.date, datetime.datetime, datetime.time, datetime.timedelta)):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(isinstance(item, tuple) and len(item) == 2 for item in value) and value:  # a map's pairs
            return {str(k): json_value(v) for k, v in value}
        return [json_value(v) for v in value]
    return str(value)
