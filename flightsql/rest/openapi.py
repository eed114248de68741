"""The OpenAPI 3.1 document of the REST API (``GET /openapi.json``): what the server
serves, checked by property-based API fuzzing in the tests."""

from __future__ import annotations

from typing import Any

from flightsql.rest.livy import SESSION_KINDS, SessionState, StatementState


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "an error: its message in msg")
_ERRORS = dict.fromkeys(("400", "401", "403", "404", "405", "413", "503"), _ERROR)
_ID = {"type": "integer", "minimum": 0}
_SESSION_ID = {"name": "sessionId", "in": "path", "required": True, "schema": _ID}
_BATCH_ID = {"name": "batchId", "in": "path", "required": True, "schema": _ID}
_STATEMENT_ID = {"name": "statementId", "in": "path", "required": True, "schema": _ID}
_WINDOW = [{"name": "from", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
           {"name": "size", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}}]

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["msg"], "properties": {"msg": {"type": "string"}}},
    "NewSession": {"type": "object", "properties": {
        "kind": {"type": "string", "enum": list(SESSION_KINDS)},
        "name": {"type": "string", "maxLength": 200},
        "proxyUser": {"type": "string"},
        "conf": {"type": "object", "propertyNames": {"pattern": "^[A-Za-z0-9_.\\-]+$"},
                 "additionalProperties": {"type": "string", "pattern": "^[^;\\r\\n\\x00]*$"}},
    }},
    "Session": {"type": "object", "required": ["id", "owner", "proxyUser", "kind", "state", "log"], "properties": {
        "id": _ID, "name": {"type": ["string", "null"]}, "appId": {"type": ["string", "null"]},
        "owner": {"type": "string"}, "proxyUser": {"type": "string"}, "kind": {"type": "string"},
        "state": {"type": "string", "enum": [s.value for s in SessionState]},
        "log": {"type": "array", "items": {"type": "string"}}, "appInfo": {"type": "object"},
    }},
    "Sessions": {"type": "object", "required": ["from", "total", "sessions"], "properties": {
        "from": {"type": "integer"}, "total": {"type": "integer"},
        "sessions": {"type": "array", "items": _ref("Session")}}},
    "SessionState": {"type": "object", "required": ["id", "state"], "properties": {
        "id": _ID, "state": {"type": "string", "enum": [s.value for s in SessionState]}}},
    "Log": {"type": "object", "required": ["id", "from", "total", "log"], "properties": {
        "id": _ID, "from": {"type": "integer"}, "total": {"type": "integer"},
        "log": {"type": "array", "items": {"type": "string"}}}},
    "NewStatement": {"type": "object", "required": ["code"], "properties": {
        "code": {"type": "string", "minLength": 1}, "kind": {"type": "string", "enum": ["sql"]}}},
    "Statement": {"type": "object", "required": ["id", "code", "state", "output", "progress"], "properties": {
        "id": _ID, "code": {"type": "string"},
        "state": {"type": "string", "enum": [s.value for s in StatementState]},
        "output": {"type": ["object", "null"]}, "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "started": {"type": "integer"}, "completed": {"type": "integer"}}},
    "Statements": {"type": "object", "required": ["total_statements", "statements"], "properties": {
        "total_statements": {"type": "integer"}, "statements": {"type": "array", "items": _ref("Statement")}}},
    "Message": {"type": "object", "required": ["msg"], "properties": {"msg": {"type": "string"}}},
    "NewBatch": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "minLength": 1}, "className": {"type": "string", "pattern": "^[A-Za-z0-9_.$]+$"},
        "args": {"type": "array", "items": {"type": "string"}}, "name": {"type": "string"},
        "proxyUser": {"type": "string"}, "conf": {"type": "object", "additionalProperties": {"type": "string"}},
        "driverMemory": {"type": "string"}, "executorMemory": {"type": "string"},
        "driverCores": {"type": "integer"}, "executorCores": {"type": "integer"}, "numExecutors": {"type": "integer"},
        "jars": {"type": "array", "items": {"type": "string"}},
        "pyFiles": {"type": "array", "items": {"type": "string"}},
        "files": {"type": "array", "items": {"type": "string"}}}},
    "Batch": {"type": "object", "required": ["id", "owner", "state", "log"], "properties": {
        "id": _ID, "name": {"type": ["string", "null"]}, "owner": {"type": "string"}, "proxyUser": {"type": "string"},
        "state": {"type": "string", "enum": ["starting", "running", "success", "dead", "killed"]},
        "appId": {"type": ["string", "null"]}, "appInfo": {"type": "object"},
        "log": {"type": "array", "items": {"type": "string"}}}},
    "Batches": {"type": "object", "required": ["from", "total", "sessions"], "properties": {
        "from": {"type": "integer"}, "total": {"type": "integer"},
        "sessions": {"type": "array", "items": _ref("Batch")}}},
    "BatchState": {"type": "object", "required": ["id", "state"], "properties": {
        "id": _ID, "state": {"type": "string"}}},
}


def _operation(summary: str, ok: str, schema: str, parameters: list[dict[str, Any]] | None = None,
               body: str | None = None, created: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {("201" if created else "200"): _json(_ref(schema), ok), **_ERRORS},
    }
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return operation


def document(version: str, server_url: str | None = None) -> dict[str, Any]:
    session, statement = "/sessions/{sessionId}", "/sessions/{sessionId}/statements/{statementId}"
    batch = "/batches/{batchId}"
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Spark Flight SQL: Livy-compatible REST API", "version": version},
        "security": [{"basic": []}, {"bearer": []}],
        "paths": {
            "/sessions": {
                "get": _operation("List the caller's sessions", "sessions", "Sessions", _WINDOW),
                "post": _operation("Create a SQL session", "the new session", "Session", body="NewSession",
                                   created=True),
            },
            session: {
                "get": _operation("A session", "the session", "Session", [_SESSION_ID]),
                "delete": _operation("End a session, cancelling its statements", "deleted", "Message", [_SESSION_ID]),
            },
            session + "/state": {"get": _operation("A session's state", "its state", "SessionState", [_SESSION_ID])},
            session + "/log": {"get": _operation("A session's log", "its lines", "Log", [_SESSION_ID, *_WINDOW])},
            session + "/statements": {
                "get": _operation("A session's statements", "the statements", "Statements", [_SESSION_ID, *_WINDOW]),
                "post": _operation("Run a SQL statement", "the statement, waiting", "Statement", [_SESSION_ID],
                                   body="NewStatement", created=True),
            },
            statement: {"get": _operation("A statement", "the statement", "Statement", [_SESSION_ID, _STATEMENT_ID])},
            statement + "/cancel": {
                "post": _operation("Cancel a statement", "cancelled", "Message", [_SESSION_ID, _STATEMENT_ID]),
            },
            "/batches": {
                "get": _operation("List the caller's batches", "batches", "Batches", _WINDOW),
                "post": _operation("Submit a batch (spark-submit)", "the new batch", "Batch", body="NewBatch",
                                   created=True),
            },
            batch: {
                "get": _operation("A batch", "the batch", "Batch", [_BATCH_ID]),
                "delete": _operation("Kill a batch", "deleted", "Message", [_BATCH_ID]),
            },
            batch + "/state": {"get": _operation("A batch's state", "its state", "BatchState", [_BATCH_ID])},
            batch + "/log": {"get": _operation("A batch's driver log", "its lines", "Log", [_BATCH_ID, *_WINDOW])},
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"},
                                "bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url.rstrip("/")}]
    return doc
