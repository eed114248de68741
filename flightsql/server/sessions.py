"""Client sessions: each has its own Spark session, and its state is kept for the cluster.

A Spark session isolates the current catalog and schema, temporary views and SQL
configuration.  A call's session is named by, in this order:

1. the ``arrow_flight_session_id`` cookie it carries (JDBC keeps cookies; ADBC with
   ``adbc.flight.sql.rpc.with_cookie_middleware``);
2. the session its bearer token was issued with (a login opens a session, and the token
   names it: an ADBC connection logs in once and so has its own session, cookies or not);
3. nothing: the call opens a new session and the answer sets the cookie.

A session id is the client's to present but only its user's to use: sessions are keyed by
(user, id), so a cookie of another user's session names a session of the caller's own.

What a session has changed (catalog, schema, SQL settings, its options) is recorded in a
:class:`SessionStore` (ZooKeeper on a node) after each call that may change it, with a
version; every call compares the version it holds with the store's, so a client whose
next call lands on another node keeps its state there.  A session nobody uses for the
idle timeout ends on every node; ``CloseSession`` ends it at once.  Temporary views stay
on the node that made them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from flightsql.protocol.commands import SessionValue

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

SESSION_COOKIE = "arrow_flight_session_id"
#: session option names (ADBC sends "catalog" and "schema")
CATALOG_OPTIONS = ("catalog",)
EXECUTION_MODE_OPTION = "execution_mode"
SCHEMA_OPTIONS = ("schema", "db_schema")
#: sessions a node keeps in memory at most; past it the least recently used is let go
#: (its recorded state comes back on its next call, its temporary views do not)
MAX_LOCAL_SESSIONS = 2_000
DEFAULT_IDLE_TIMEOUT = 3600.0

_SESSION_ID = re.compile(r"[0-9a-f]{32}")


def new_session_id() -> str:
    return uuid.uuid4().hex


def valid_session_id(value: str | None) -> str | None:
    """The id if it is one this server could have issued, else None (a new session)."""
    return value if value is not None and _SESSION_ID.fullmatch(value) else None


def cookie_session_id(metadata: Mapping[str, str]) -> str | None:
    """The session id of the call's ``cookie`` header, if any."""
    for part in metadata.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value:
            return value.strip('"')
    return None


def set_cookie(session_id: str) -> tuple[str, str]:
    return ("set-cookie", f"{SESSION_COOKIE}={session_id}")


def clear_cookie() -> tuple[str, str]:
    return ("set-cookie", f"{SESSION_COOKIE}=; Max-Age=0")


@dataclass(frozen=True)
class SessionState:
    """What a session changed from a fresh one: what is recorded, and restored elsewhere."""

    user: str
    session_id: str
    catalog: str | None = None
    schema: str | None = None
    #: SQL settings that differ from the node's, as Spark holds them (text)
    conf: Mapping[str, str] = field(default_factory=dict)
    #: options set with SetSessionOptions, with the type they were given
    options: Mapping[str, SessionValue] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        options = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        return json.dumps({"user": self.user, "session": self.session_id, "catalog": self.catalog,
                           "schema": self.schema, "conf": dict(self.conf), "options": options},
                          sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionState:
        raw = json.loads(data)
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.get("options", {}).items()}
        return cls(raw["user"], raw["session"], raw.get("catalog"), raw.get("schema"),
                   dict(raw.get("conf", {})), options)


def session_key(user: str, session_id: str) -> str:
    """The store's name for (user, session): a digest, so that neither leaks into paths."""
    return hashlib.sha256(f"{user}\x00{session_id}".encode()).hexdigest()[:40]


class SessionStore(Protocol):
    """Where session states are recorded for the cluster (``flightsql.server.session_store``)."""

    def version(self, key: str) -> int | None:
        """The record's version, None if there is none."""

    def load(self, key: str) -> tuple[SessionState, int] | None: ...

    def save(self, key: str, state: SessionState) -> int:
        """Create or replace the record; its new version."""

    def touch(self, key: str) -> int | None:
        """Mark the record used now (its content unchanged); its new version."""

    def delete(self, key: str) -> None: ...

    def idle(self, seconds: float) -> list[str]:
        """Keys of records not saved or touched for ``seconds``."""


class MemorySessionStore:
    """A store for one process (tests, and nodes of one)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, tuple[bytes, int, float]] = {}
        self._clock = clock

    def version(self, key: str) -> int | None:
        record = self._records.get(key)
        return None if record is None else record[1]

    def load(self, key: str) -> tuple[SessionState, int] | None:
        record = self._records.get(key)
        return None if record is None else (SessionState.from_bytes(record[0]), record[1])

    def save(self, key: str, state: SessionState) -> int:
        with self._lock:
            version = self._records.get(key, (b"", -1, 0.0))[1] + 1
            self._records[key] = (state.to_bytes(), version, self._clock())
            return version

    def touch(self, key: str) -> int | None:
        with self._lock:
            record = self._records.get(key)
            if record is None:
                return None
            self._records[key] = (record[0], record[1] + 1, self._clock())
            return record[1] + 1

    def delete(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def idle(self, seconds: float) -> list[str]:
        cutoff = self._clock() - seconds
        return [key for key, (_, _, used) in list(self._records.items()) if used < cutoff]


@dataclass
class ClientSession:
    """A session as one node holds it: its Spark session and the state it last recorded."""

    session_id: str
    user: str
    spark: SparkSession
    options: dict[str, SessionValue] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: the store's version this node's copy matches (None: no record, a fresh session)
    version: int | None = None
    recorded: SessionState | None = None
    used: float = field(default_factory=time.monotonic)
    touched: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> str:
        return session_key(self.user, self.session_id)

    def execution_mode(self, default: str) -> str:
        return str(self.options.get(EXECUTION_MODE_OPTION, default))

    def current(self, defaults: Mapping[str, str]) -> dict[str, SessionValue]:
        """Options as clients read them back: SQL settings the session changed (as text),
        options as they were set, and the live catalog and schema."""
        values: dict[str, SessionValue] = {k: v for k, v in _changed_conf(self.spark, defaults).items()
                                           if k.startswith("spark.")}
        values.update(self.options)
        values["catalog"] = self.spark.catalog.currentCatalog()
        values["schema"] = self.spark.catalog.currentDatabase()
        return values

    def set_option(self, name: str, value: SessionValue) -> str | None:
        """Apply one option; returns an error name for the result, or None."""
        if name in CATALOG_OPTIONS:
            if not isinstance(value, str):
                return "invalid_value"
            self.spark.catalog.setCurrentCatalog(value)
        elif name in SCHEMA_OPTIONS:
            if not isinstance(value, str):
                return "invalid_value"
            self.spark.catalog.setCurrentDatabase(value)
        elif name == EXECUTION_MODE_OPTION:
            if value is None:
                self.options.pop(name, None)
            elif value not in ("auto", "single", "distributed"):
                return "invalid_value"
            else:
                self.options[name] = value
        elif name.startswith("spark."):
            if value is None:
                self.spark.conf.unset(name)
                self.options.pop(name, None)
            elif isinstance(value, tuple):
                return "invalid_value"  # a Spark setting is one value
            else:
                self.spark.conf.set(name, value if isinstance(value, (str, int, bool)) else str(value))
                self.options[name] = value
        else:
            return "invalid_name"
        return None

    def state(self, defaults: Mapping[str, str]) -> SessionState:
        return SessionState(self.user, self.session_id, self.spark.catalog.currentCatalog(),
                            self.spark.catalog.currentDatabase(), _changed_conf(self.spark, defaults),
                            dict(self.options))

    def apply(self, state: SessionState, defaults: Mapping[str, str]) -> None:
        """Make this copy hold ``state`` (recorded by another node): settings, options, catalog
        and schema.  A catalog or schema that no longer exists leaves the current one."""
        spark = self.spark
        for name in _changed_conf(spark, defaults):
            if name not in state.conf:
                spark.conf.unset(name)
        for name, value in state.conf.items():
            spark.conf.set(name, value)
        self.options = dict(state.options)
        places: tuple[tuple[Callable[[str], None], str | None], ...] = (
            (spark.catalog.setCurrentCatalog, state.catalog), (spark.catalog.setCurrentDatabase, state.schema))
        for setter, place in places:
            if place is not None:
                try:
                    setter(place)
                except Exception as exc:  # noqa: BLE001 - dropped since it was recorded
                    log.info("session %s: %s is gone, left as is: %s", self.session_id[:8], place, exc)


def _changed_conf(spark: SparkSession, defaults: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in spark.conf.getAll.items() if defaults.get(k) != v}


class Sessions:
    """The sessions a node holds, kept in step with the store."""

    def __init__(
        self,
        root: SparkSession,
        store: SessionStore | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_local: int = MAX_LOCAL_SESSIONS,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError("the session idle timeout must be > 0")
        self._root = root
        self.store: SessionStore = store if store is not None else MemorySessionStore()
        self.idle_timeout = idle_timeout
        self._max_local = max_local
        self._lock = threading.Lock()
        self._local: OrderedDict[str, ClientSession] = OrderedDict()
        self.defaults = dict(root.conf.getAll)

    def __len__(self) -> int:
        return len(self._local)

    def open(self, user: str, session_id: str | None) -> ClientSession:
        """The session ``session_id`` of ``user`` (a new one for None), in step with the store."""
        session_id = valid_session_id(session_id) or new_session_id()
        key = session_key(user, session_id)
        with self._lock:
            session = self._local.get(key)
            if session is None:
                session = ClientSession(session_id, user, self._root.newSession())
                self._local[key] = session
                while len(self._local) > self._max_local:
                    self._local.popitem(last=False)
            self._local.move_to_end(key)
        with session.lock:
            self._catch_up(session)
            session.used = time.monotonic()
            if session.version is not None and session.used - session.touched > self.idle_timeout / 4:
                session.touched = session.used
                session.version = self.store.touch(key)  # used: not idle anywhere
        return session

    def _catch_up(self, session: ClientSession) -> None:
        version = self.store.version(session.key)
        if version == session.version:
            return
        if version is None:  # closed, or idle too long, since this node last saw it
            log.info("session %s of %s ended elsewhere: starting afresh", session.session_id[:8], session.user)
            session.spark = self._root.newSession()
            session.options, session.version, session.recorded = {}, None, None
            return
        loaded = self.store.load(session.key)
        if loaded is None:
            return self._catch_up(session)
        state, version = loaded
        if state != session.recorded:
            session.apply(state, self.defaults)
        session.version, session.recorded = version, state

    def record(self, session: ClientSession) -> None:
        """After a call that may have changed the session: record what changed, if anything."""
        with session.lock:
            state = session.state(self.defaults)
            if state == session.recorded or (session.recorded is None and state == self._fresh(session)):
                return
            session.version = self.store.save(session.key, state)
            session.recorded = state
            session.touched = time.monotonic()

    def _fresh(self, session: ClientSession) -> SessionState:
        """What a session that changed nothing looks like (no record needed)."""
        catalog = self._root.catalog
        return SessionState(session.user, session.session_id, catalog.currentCatalog(), catalog.currentDatabase())

    def close(self, session: ClientSession) -> None:
        """End ``session`` here and for the cluster."""
        with self._lock:
            self._local.pop(session.key, None)
        self.store.delete(session.key)

    def expire(self) -> int:
        """End sessions idle for the idle timeout: this node's copies, and records no node
        has touched.  Returns how many copies this node let go."""
        cutoff = time.monotonic() - self.idle_timeout
        with self._lock:
            idle = [key for key, s in self._local.items() if s.used < cutoff]
            for key in idle:
                del self._local[key]
        for key in self.store.idle(self.idle_timeout):
            self.store.delete(key)
        return len(idle)

    def start(self) -> Sessions:
        """Expire idle sessions in the background, every quarter of the idle timeout (at
        most every minute)."""
        self._stopped = threading.Event()
        interval = min(self.idle_timeout / 4, 60.0)

        def run() -> None:
            while not self._stopped.wait(interval):
                try:
                    ended = self.expire()
                    if ended:
                        log.info("%d idle sessions ended", ended)
                except Exception as exc:  # noqa: BLE001 - tried again next round
                    log.warning("expiring idle sessions: %s: %s", type(exc).__name__, exc)

        threading.Thread(target=run, name="session-expiry", daemon=True).start()
        return self

    def stop(self) -> None:
        stopped = getattr(self, "_stopped", None)
        if stopped is not None:
            stopped.set()

    def clear(self) -> None:
        """Forget every local copy (the Spark sessions are gone with their driver); the
        records stay and are restored on each session's next call."""
        with self._lock:
            self._local.clear()

    def rebase(self, root: SparkSession) -> None:
        """Make new sessions from ``root`` (a new Spark driver)."""
        self._root = root
        self.defaults = dict(root.conf.getAll)
        self.clear()
