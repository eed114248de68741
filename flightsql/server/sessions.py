"""Client sessions: one Spark session per (user, Flight session), with its options.

A Spark session isolates the current catalog and schema, temporary views and SQL
configuration.  Clients that keep the ``arrow_flight_session_id`` cookie get their
own session; clients that do not share one session per user.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from flightsql.errors import InvalidArgument

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SESSION_COOKIE = "arrow_flight_session_id"
#: session option names (ADBC sends "catalog" and "schema")
CATALOG_OPTIONS = ("catalog",)
EXECUTION_MODE_OPTION = "execution_mode"
SCHEMA_OPTIONS = ("schema", "db_schema")


@dataclass
class ClientSession:
    session_id: str
    user: str
    spark: "SparkSession"
    options: dict[str, object] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def execution_mode(self, default: str) -> str:
        return str(self.options.get(EXECUTION_MODE_OPTION, default))

    def current(self) -> dict[str, object]:
        """Options as clients read them back, with the live catalog and schema."""
        values = dict(self.options)
        values["catalog"] = self.spark.catalog.currentCatalog()
        values["schema"] = self.spark.catalog.currentDatabase()
        return values

    def set_option(self, name: str, value: object) -> str | None:
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
            if value not in ("auto", "single", "distributed"):
                return "invalid_value"
            self.options[name] = value
        elif name.startswith("spark."):
            if value is None:
                self.spark.conf.unset(name)
            else:
                self.spark.conf.set(name, value if isinstance(value, (str, int, bool)) else str(value))
            self.options[name] = value
        else:
            return "invalid_name"
        return None


class Sessions:
    def __init__(self, root: "SparkSession") -> None:
        self._root = root
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str], ClientSession] = {}

    @staticmethod
    def session_id(metadata: Mapping[str, str]) -> str | None:
        cookie = metadata.get("cookie", "")
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and value:
                return value
        return None

    def get(self, user: str, session_id: str | None) -> ClientSession:
        key = (user, session_id or "")
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = ClientSession(session_id or "", user, self._root.newSession())
                self._sessions[key] = session
            return session

    def new_id(self) -> str:
        return uuid.uuid4().hex

    def close(self, user: str, session_id: str | None) -> bool:
        if not session_id:
            raise InvalidArgument("no session to close: this call carries no session cookie")
        with self._lock:
            return self._sessions.pop((user, session_id), None) is not None
