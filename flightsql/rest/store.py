"""Livy sessions and statements in ZooKeeper, so that every node answers for every one::

    <root>/rest/sessions/<id>                    a Session as JSON (<id>: a sequence number)
    <root>/rest/sessions/<id>/statements/<sid>   a Statement as JSON (<sid>: numbered within)
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterator

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoNodeError, NotEmptyError

from flightsql.rest.livy import Session, Statement

#: lines a session's log keeps (the oldest go first)
MAX_LOG_LINES = 200


class RestStore:
    def __init__(self, zk: KazooClient, root: str) -> None:
        self.zk = zk
        self.base = ("" if root == "/" else root) + "/rest/sessions"
        zk.ensure_path(self.base)

    def _session_path(self, session_id: int) -> str:
        return f"{self.base}/{session_id:010d}"

    def _statements(self, session_id: int) -> str:
        return f"{self._session_path(session_id)}/statements"

    # -- sessions ----------------------------------------------------------------------
    def create_session(self, make: Callable[[int], Session]) -> Session:
        """A new session, numbered by ZooKeeper (ids are unique across the cluster)."""
        path = self.zk.create(self.base + "/", b"{}", sequence=True)
        session = make(int(path.rsplit("/", 1)[1]))
        self.zk.set(path, _encode(session.to_dict()))
        self.zk.ensure_path(self._statements(session.id))
        return session

    def session(self, session_id: int) -> Session | None:
        try:
            data, _ = self.zk.get(self._session_path(session_id))
        except NoNodeError:
            return None
        doc = json.loads(data or b"{}")
        return Session.from_dict(doc) if doc else None  # {} while its creator fills it in

    def sessions(self) -> Iterator[Session]:
        for name in sorted(self.zk.get_children(self.base)):
            if name.isdigit():
                session = self.session(int(name))
                if session is not None:
                    yield session

    def log(self, session_id: int, line: str) -> None:
        """Append a line to a session's log (compare-and-set: any node may append)."""
        path = self._session_path(session_id)
        stamped = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}"
        for _ in range(20):
            try:
                data, stat = self.zk.get(path)
                doc = json.loads(data)
                doc["log"] = [*doc.get("log", []), stamped][-MAX_LOG_LINES:]
                self.zk.set(path, _encode(doc), version=stat.version)
                return
            except BadVersionError:
                continue
            except NoNodeError:
                return

    def delete_session(self, session_id: int) -> None:
        for _ in range(5):
            try:
                self.zk.delete(self._session_path(session_id), recursive=True)
                return
            except NoNodeError:
                return
            except NotEmptyError:  # a statement was added meanwhile
                continue

    # -- statements --------------------------------------------------------------------
    def add_statement(self, session_id: int, make: Callable[[int], Statement]) -> Statement:
        path = self.zk.create(self._statements(session_id) + "/", b"{}", sequence=True)
        statement = make(int(path.rsplit("/", 1)[1]))
        self.zk.set(path, _encode(statement.to_dict()))
        return statement

    def statement(self, session_id: int, statement_id: int) -> Statement | None:
        try:
            data, _ = self.zk.get(f"{self._statements(session_id)}/{statement_id:010d}")
        except NoNodeError:
            return None
        doc = json.loads(data or b"{}")
        return Statement.from_dict(doc) if doc else None

    def statements(self, session_id: int) -> list[Statement]:
        try:
            names = sorted(self.zk.get_children(self._statements(session_id)))
        except NoNodeError:
            return []
        found = (self.statement(session_id, int(name)) for name in names if name.isdigit())
        return [s for s in found if s is not None]

    def update_statement(self, session_id: int, statement_id: int, change: Callable[[Statement], Any]) -> Statement | None:
        """Apply ``change`` to the statement (compare-and-set); None if it is gone."""
        path = f"{self._statements(session_id)}/{statement_id:010d}"
        while True:
            try:
                data, stat = self.zk.get(path)
                statement = Statement.from_dict(json.loads(data))
                change(statement)
                self.zk.set(path, _encode(statement.to_dict()), version=stat.version)
                return statement
            except BadVersionError:
                continue
            except NoNodeError:
                return None


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
