"""Answers to repeated small queries, kept until a table they read changes.

A dashboard asks the same few queries again and again.  The second time a query is
asked (same SQL, same session settings, catalog and schema, same analysed plan), the
node runs it as a small driver job with a row limit; if the whole answer fits (at most
``max_rows`` rows and ``max_bytes``), it is kept, and later askers get it without
Spark.  An answer is dropped as soon as a table it read is written through the cluster
(every write bumps the table's version, see :mod:`flightsql.server.writes`), and after
``ttl`` seconds whatever happens, which bounds how stale it can be after a write that did
not come through the cluster.  Only deterministic queries over catalog tables are kept:
no ``rand()``, no ``current_timestamp()``, nothing read from files by path.  Every
asker's statement is still judged by the gate first; the cache never decides access.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

DEFAULT_TTL = 60.0
DEFAULT_BUDGET = 64 * 1024 * 1024
MAX_ROWS = 10_000
MAX_BYTES = 4 * 1024 * 1024
#: queries remembered as asked once (or as too large to keep)
MAX_ASKED = 100_000
#: functions whose value changes between two runs of the same plan
VOLATILE = ("current_", "now(", "localtimestamp", "unix_timestamp", "uuid(", "rand", "shuffle(", "session_user",
            "user()", "input_file", "monotonically_increasing_id", "spark_partition_id")


def volatile(plan_text: str) -> bool:
    text = plan_text.lower()
    return any(token in text for token in VOLATILE)


@dataclass
class Entry:
    table: pa.Table
    #: the tables read, with their versions when the answer was made
    read: Mapping[str, int]
    made: float


class ResultCache:
    def __init__(self, version_of: Callable[[str], int], ttl: float = DEFAULT_TTL, budget: int = DEFAULT_BUDGET,
                 max_rows: int = MAX_ROWS, max_bytes: int = MAX_BYTES) -> None:
        self._version_of = version_of
        self.ttl = ttl
        self.budget = budget
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._held = 0
        #: keys asked once (the next ask fills), and keys whose answers are too large
        self._asked: OrderedDict[str, bool] = OrderedDict()
        self.hits = self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.budget > 0

    @staticmethod
    def key(sql: str, session: Mapping[str, object], plan_hash: int) -> str:
        doc = json.dumps({"sql": sql, "session": session, "plan": plan_hash}, sort_keys=True, default=str)
        return hashlib.sha256(doc.encode()).hexdigest()

    def versions(self, tables: Sequence[str]) -> dict[str, int]:
        return {table: self._version_of(table) for table in sorted(set(tables))}

    def get(self, key: str) -> pa.Table | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry.made > self.ttl or self.versions(list(entry.read)) != entry.read:
            if entry is not None:
                self._drop(key)
            self.misses += 1
            return None
        with self._lock:
            self._entries.move_to_end(key)
        self.hits += 1
        return entry.table

    def should_fill(self, key: str) -> bool:
        """Whether to make this ask's answer in the driver and keep it: the second ask of a
        query whose answer was not found too large before."""
        with self._lock:
            asked = self._asked.get(key)
            if asked is None:
                self._asked[key] = True
                while len(self._asked) > MAX_ASKED:
                    self._asked.popitem(last=False)
                return False
            return asked

    def too_large(self, key: str) -> None:
        with self._lock:
            self._asked[key] = False

    def fits(self, table: pa.Table) -> bool:
        return bool(table.num_rows <= self.max_rows and table.nbytes <= self.max_bytes)

    def put(self, key: str, table: pa.Table, read: Mapping[str, int]) -> None:
        with self._lock:
            self._remove(key)
            self._entries[key] = Entry(table, dict(read), time.monotonic())
            self._held += table.nbytes
            while self._held > self.budget and self._entries:
                self._remove(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        with self._lock:
            self._remove(key)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._held -= entry.table.nbytes
