"""Livy sessions and statements in ZooKeeper, so that every node answers for every one::

    <root>/rest/sessions/<id>                    a Session as JSON (<id>: a sequence number)
    <root>/rest/sessions/<id>/statements/<sid>   a Statement as JSON (<sid>: numbered within)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoNodeError, NotEmptyError
from kazoo.recipe.watchers import DataWatch

from flightsql.rest.livy import Session, Statement

#: lines a session's log keeps (the oldest go first)
MAX_LOG_LINES = 200

T = TypeVar("T")


def create_numbered(zk: KazooClient, base: str) -> tuple[str, int]:
    """A new znode under ``base``, numbered by ZooKeeper (unique across the cluster),
    holding ``{}`` until its creator fills it in."""
    path = zk.create(base + "/", b"{}", sequence=True)
    return path, int(path.rsplit("/", 1)[1])


def compare_and_set(zk: KazooClient, path: str, load: Callable[[dict[str, Any]], T], change: Callable[[T], Any],
                    dump: Callable[[T], dict[str, Any]], attempts: int | None = None) -> T | None:
    """Apply ``change`` to the JSON record at ``path``, again from a fresh read whenever
    another writer came between (any node may write any record); None if the record is
    gone, or every one of ``attempts`` met another writer."""
    tried = 0
    while attempts is None or tried < attempts:
        tried += 1
        try:
            data, stat = zk.get(path)
            record = load(json.loads(data))
            change(record)
            zk.set(path, _encode(dump(record)), version=stat.version)
            return record
        except BadVersionError:
            continue
        except NoNodeError:
            return None
    return None


class RestStore:
    def __init__(self, zk: KazooClient, root: str) -> None:
        self.zk = zk
        self.base = ("" if root == "/" else root) + "/rest/sessions"
        zk.ensure_path(self.base)

    def _session_path(self, session_id: int) -> str:
        return f"{self.base}/{session_id:010d}"

    def _statements(self, session_id: int) -> str:
        return f"{self._session_path(session_id)}/statements"

    def _statement_path(self, session_id: int, statement_id: int) -> str:
        return f"{self._statements(session_id)}/{statement_id:010d}"

    # -- sessions ----------------------------------------------------------------------
    def create_session(self, make: Callable[[int], Session]) -> Session:
        """A new session, numbered by ZooKeeper (ids are unique across the cluster)."""
        path, session_id = create_numbered(self.zk, self.base)
        session = make(session_id)
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
        stamped = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}"

        def append(doc: dict[str, Any]) -> None:
            doc["log"] = [*doc.get("log", []), stamped][-MAX_LOG_LINES:]

        compare_and_set(self.zk, self._session_path(session_id), dict, append, dict, attempts=20)

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
        path, statement_id = create_numbered(self.zk, self._statements(session_id))
        statement = make(statement_id)
        self.zk.set(path, _encode(statement.to_dict()))
        return statement

    def statement(self, session_id: int, statement_id: int) -> Statement | None:
        try:
            data, _ = self.zk.get(self._statement_path(session_id, statement_id))
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

    def update_statement(
        self, session_id: int, statement_id: int, change: Callable[[Statement], Any]
    ) -> Statement | None:
        """Apply ``change`` to the statement (compare-and-set); None if it is gone."""
        return compare_and_set(self.zk, self._statement_path(session_id, statement_id), Statement.from_dict, change,
                               Statement.to_dict)

    def cancel_watch(self, session_id: int, statement_id: int) -> tuple[threading.Event, Callable[[], None]]:
        """An event set as soon as the statement is asked to cancel (or is gone), from any
        node: a ZooKeeper watch, not a read per look.  Call the returned function when the
        statement has ended; the watch goes with the record's next change."""
        asked, ended = threading.Event(), threading.Event()

        def seen(data: bytes | None, _stat: Any) -> bool:
            state = json.loads(data).get("state") if data else None
            if data is None or state in ("cancelling", "cancelled"):
                asked.set()
            return not (asked.is_set() or ended.is_set())  # False: watch no more

        DataWatch(self.zk, self._statement_path(session_id, statement_id), seen)
        return asked, ended.set


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
