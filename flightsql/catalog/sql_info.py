"""The ``CommandGetSqlInfo`` answers of this server.

Every id of the server block (0-11, 100-101) and of the SQL syntax block
(500-576) is answered, each with the union member the specification gives it:
strings as ``string_value``, booleans as ``bool_value``, limits as
``bigint_value``, enum values and bitmasks as ``int32_bitmask``, lists as
``string_list`` and ``SQL_SUPPORTS_CONVERT`` as ``int32_to_int32_list_map``.

Four ids described in ``FlightSql.proto`` as an "int32 ordinal" are sent as
``bigint_value``: ``SQL_IDENTIFIER_CASE``, ``SQL_QUOTED_IDENTIFIER_CASE``,
``SQL_NULL_ORDERING`` and ``SQL_DEFAULT_TRANSACTION_ISOLATION``.  The reference
servers of the Arrow project (the C++ SQLite example, the Java
``SqlInfoBuilder``) send them that way, and the clients built with them read
them that way: the Flight SQL JDBC driver casts ``SQL_DEFAULT_TRANSACTION_ISOLATION``
to a ``Long`` and fails on an ``Integer``, and the Flight SQL ODBC driver reads
all four as 64-bit integers.

The values describe Spark SQL as a Flight SQL server runs it: read-write, no
transactions, case-insensitive identifiers quoted with backticks.  The answers
are built once, on first use, from :class:`EngineFacts`.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from flightsql.catalog.schemas import SQL_INFO, SQL_INFO_VALUE, InfoMember

__all__ = ["EngineFacts", "SqlInfo", "SqlInfoCatalog"]

DEFAULT_SERVER_NAME = "Spark Flight SQL"


@dataclass(frozen=True, kw_only=True)
class EngineFacts:
    """What the engine reports about itself, gathered once at server start."""

    server_name: str = DEFAULT_SERVER_NAME
    server_version: str
    arrow_version: str
    spark_version: str
    keywords: tuple[str, ...] = ()
    numeric_functions: tuple[str, ...] = ()
    string_functions: tuple[str, ...] = ()
    system_functions: tuple[str, ...] = ()
    datetime_functions: tuple[str, ...] = ()


class SqlInfo(enum.IntEnum):
    """The standard info ids of ``FlightSql.proto`` (``SqlInfo`` enum)."""

    FLIGHT_SQL_SERVER_NAME = 0
    FLIGHT_SQL_SERVER_VERSION = 1
    FLIGHT_SQL_SERVER_ARROW_VERSION = 2
    FLIGHT_SQL_SERVER_READ_ONLY = 3
    FLIGHT_SQL_SERVER_SQL = 4
    FLIGHT_SQL_SERVER_SUBSTRAIT = 5
    FLIGHT_SQL_SERVER_SUBSTRAIT_MIN_VERSION = 6
    FLIGHT_SQL_SERVER_SUBSTRAIT_MAX_VERSION = 7
    FLIGHT_SQL_SERVER_TRANSACTION = 8
    FLIGHT_SQL_SERVER_CANCEL = 9
    FLIGHT_SQL_SERVER_BULK_INGESTION = 10
    FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED = 11
    FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT = 100
    FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT = 101
    SQL_DDL_CATALOG = 500
    SQL_DDL_SCHEMA = 501
    SQL_DDL_TABLE = 502
    SQL_IDENTIFIER_CASE = 503
    SQL_IDENTIFIER_QUOTE_CHAR = 504
    SQL_QUOTED_IDENTIFIER_CASE = 505
    SQL_ALL_TABLES_ARE_SELECTABLE = 506
    SQL_NULL_ORDERING = 507
    SQL_KEYWORDS = 508
    SQL_NUMERIC_FUNCTIONS = 509
    SQL_STRING_FUNCTIONS = 510
    SQL_SYSTEM_FUNCTIONS = 511
    SQL_DATETIME_FUNCTIONS = 512
    SQL_SEARCH_STRING_ESCAPE = 513
    SQL_EXTRA_NAME_CHARACTERS = 514
    SQL_SUPPORTS_COLUMN_ALIASING = 515
    SQL_NULL_PLUS_NULL_IS_NULL = 516
    SQL_SUPPORTS_CONVERT = 517
    SQL_SUPPORTS_TABLE_CORRELATION_NAMES = 518
    SQL_SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES = 519
    SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY = 520
    SQL_SUPPORTS_ORDER_BY_UNRELATED = 521
    SQL_SUPPORTED_GROUP_BY = 522
    SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE = 523
    SQL_SUPPORTS_NON_NULLABLE_COLUMNS = 524
    SQL_SUPPORTED_GRAMMAR = 525
    SQL_ANSI92_SUPPORTED_LEVEL = 526
    SQL_SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY = 527
    SQL_OUTER_JOINS_SUPPORT_LEVEL = 528
    SQL_SCHEMA_TERM = 529
    SQL_PROCEDURE_TERM = 530
    SQL_CATALOG_TERM = 531
    SQL_CATALOG_AT_START = 532
    SQL_SCHEMAS_SUPPORTED_ACTIONS = 533
    SQL_CATALOGS_SUPPORTED_ACTIONS = 534
    SQL_SUPPORTED_POSITIONED_COMMANDS = 535
    SQL_SELECT_FOR_UPDATE_SUPPORTED = 536
    SQL_STORED_PROCEDURES_SUPPORTED = 537
    SQL_SUPPORTED_SUBQUERIES = 538
    SQL_CORRELATED_SUBQUERIES_SUPPORTED = 539
    SQL_SUPPORTED_UNIONS = 540
    SQL_MAX_BINARY_LITERAL_LENGTH = 541
    SQL_MAX_CHAR_LITERAL_LENGTH = 542
    SQL_MAX_COLUMN_NAME_LENGTH = 543
    SQL_MAX_COLUMNS_IN_GROUP_BY = 544
    SQL_MAX_COLUMNS_IN_INDEX = 545
    SQL_MAX_COLUMNS_IN_ORDER_BY = 546
    SQL_MAX_COLUMNS_IN_SELECT = 547
    SQL_MAX_COLUMNS_IN_TABLE = 548
    SQL_MAX_CONNECTIONS = 549
    SQL_MAX_CURSOR_NAME_LENGTH = 550
    SQL_MAX_INDEX_LENGTH = 551
    SQL_DB_SCHEMA_NAME_LENGTH = 552
    SQL_MAX_PROCEDURE_NAME_LENGTH = 553
    SQL_MAX_CATALOG_NAME_LENGTH = 554
    SQL_MAX_ROW_SIZE = 555
    SQL_MAX_ROW_SIZE_INCLUDES_BLOBS = 556
    SQL_MAX_STATEMENT_LENGTH = 557
    SQL_MAX_STATEMENTS = 558
    SQL_MAX_TABLE_NAME_LENGTH = 559
    SQL_MAX_TABLES_IN_SELECT = 560
    SQL_MAX_USERNAME_LENGTH = 561
    SQL_DEFAULT_TRANSACTION_ISOLATION = 562
    SQL_TRANSACTIONS_SUPPORTED = 563
    SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS = 564
    SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT = 565
    SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED = 566
    SQL_SUPPORTED_RESULT_SET_TYPES = 567
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_UNSPECIFIED = 568
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_FORWARD_ONLY = 569
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_SENSITIVE = 570
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_INSENSITIVE = 571
    SQL_BATCH_UPDATES_SUPPORTED = 572
    SQL_SAVEPOINTS_SUPPORTED = 573
    SQL_NAMED_PARAMETERS_SUPPORTED = 574
    SQL_LOCATORS_UPDATE_COPY = 575
    SQL_STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED = 576


# Enum values of FlightSql.proto used in the answers.  Bitmask answers set bit
# ``1 << value`` for each supported enum value.
_TRANSACTION_NONE = 0  # SqlSupportedTransaction / SqlTransactionIsolationLevel
_CASE_INSENSITIVE = 1  # SqlSupportedCaseSensitivity
_NULLS_SORTED_LOW = 1  # SqlNullOrdering: ASC puts NULLs first, DESC last
_LIMITED_OUTER_JOINS, _FULL_OUTER_JOINS = 1, 2  # SqlOuterJoinsSupportLevel
_GROUP_BY_UNRELATED, _GROUP_BY_BEYOND_SELECT = 0, 1
_MINIMUM_GRAMMAR, _CORE_GRAMMAR = 0, 1
_ANSI92_ENTRY_SQL = 0
_ELEMENT_IN_PROCEDURE_CALLS = 0  # CALL catalog.schema.procedure(...)
_SUBQUERIES_IN_COMPARISONS, _SUBQUERIES_IN_EXISTS, _SUBQUERIES_IN_INS = 0, 1, 2
_UNION, _UNION_ALL = 0, 1
_RESULT_SET_FORWARD_ONLY = 1
_CONCURRENCY_READ_ONLY = 1


class Convert(enum.IntEnum):
    """The ``SqlSupportsConvert`` enum of ``FlightSql.proto``."""

    BIGINT = 0
    BINARY = 1
    BIT = 2
    CHAR = 3
    DATE = 4
    DECIMAL = 5
    FLOAT = 6
    INTEGER = 7
    INTERVAL_DAY_TIME = 8
    INTERVAL_YEAR_MONTH = 9
    LONGVARBINARY = 10
    LONGVARCHAR = 11
    NUMERIC = 12
    REAL = 13
    SMALLINT = 14
    TIME = 15
    TIMESTAMP = 16
    TINYINT = 17
    VARBINARY = 18
    VARCHAR = 19


def _mask(*bits: int) -> int:
    value = 0
    for bit in bits:
        value |= 1 << bit
    return value


def _supported_casts() -> dict[int, list[int]]:
    """``CAST`` conversions Spark accepts with ANSI mode on (its default)."""
    c = Convert
    numbers = {c.BIGINT, c.DECIMAL, c.FLOAT, c.INTEGER, c.NUMERIC, c.REAL, c.SMALLINT, c.TINYINT}
    texts = {c.CHAR, c.VARCHAR, c.LONGVARCHAR}
    binaries = {c.BINARY, c.VARBINARY, c.LONGVARBINARY}
    intervals = {c.INTERVAL_DAY_TIME, c.INTERVAL_YEAR_MONTH}
    targets: dict[Convert, set[Convert]] = {}
    for number in numbers:
        targets[number] = numbers | texts | {c.BIT, c.TIMESTAMP}
    targets[c.BIT] = numbers | texts | {c.BIT}
    for text in texts:
        targets[text] = numbers | texts | binaries | intervals | {c.BIT, c.DATE, c.TIMESTAMP}
    for binary in binaries:
        targets[binary] = texts | binaries
    targets[c.DATE] = texts | {c.DATE, c.TIMESTAMP}
    targets[c.TIMESTAMP] = numbers | texts | {c.DATE, c.TIMESTAMP}
    for interval in intervals:
        targets[interval] = texts | {interval}
    return {int(source): sorted(int(t) for t in dest) for source, dest in sorted(targets.items())}


_Answer = tuple[InfoMember, Any]


def _answers(facts: EngineFacts) -> dict[int, _Answer]:
    """Every answered id with its union member and value."""
    s, b, i64, i32 = (
        InfoMember.STRING_VALUE,
        InfoMember.BOOL_VALUE,
        InfoMember.BIGINT_VALUE,
        InfoMember.INT32_BITMASK,
    )
    words = InfoMember.STRING_LIST
    i = SqlInfo
    answers: dict[SqlInfo, _Answer] = {
        i.FLIGHT_SQL_SERVER_NAME: (s, facts.server_name),
        i.FLIGHT_SQL_SERVER_VERSION: (s, facts.server_version),
        i.FLIGHT_SQL_SERVER_ARROW_VERSION: (s, facts.arrow_version),
        i.FLIGHT_SQL_SERVER_READ_ONLY: (b, False),
        i.FLIGHT_SQL_SERVER_SQL: (b, True),
        i.FLIGHT_SQL_SERVER_SUBSTRAIT: (b, False),
        # No Substrait: the reference schema declares string_value non-nullable,
        # so "no version" is an empty string rather than a null.
        i.FLIGHT_SQL_SERVER_SUBSTRAIT_MIN_VERSION: (s, ""),
        i.FLIGHT_SQL_SERVER_SUBSTRAIT_MAX_VERSION: (s, ""),
        i.FLIGHT_SQL_SERVER_TRANSACTION: (i32, _TRANSACTION_NONE),
        i.FLIGHT_SQL_SERVER_CANCEL: (b, True),
        i.FLIGHT_SQL_SERVER_BULK_INGESTION: (b, True),
        i.FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED: (b, False),
        i.FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT: (i32, 0),
        i.FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT: (i32, 0),
        i.SQL_DDL_CATALOG: (b, False),
        i.SQL_DDL_SCHEMA: (b, True),
        i.SQL_DDL_TABLE: (b, True),
        i.SQL_IDENTIFIER_CASE: (i64, _CASE_INSENSITIVE),
        i.SQL_IDENTIFIER_QUOTE_CHAR: (s, "`"),
        i.SQL_QUOTED_IDENTIFIER_CASE: (i64, _CASE_INSENSITIVE),
        i.SQL_ALL_TABLES_ARE_SELECTABLE: (b, True),
        i.SQL_NULL_ORDERING: (i64, _NULLS_SORTED_LOW),
        i.SQL_KEYWORDS: (words, list(facts.keywords)),
        i.SQL_NUMERIC_FUNCTIONS: (words, list(facts.numeric_functions)),
        i.SQL_STRING_FUNCTIONS: (words, list(facts.string_functions)),
        i.SQL_SYSTEM_FUNCTIONS: (words, list(facts.system_functions)),
        i.SQL_DATETIME_FUNCTIONS: (words, list(facts.datetime_functions)),
        i.SQL_SEARCH_STRING_ESCAPE: (s, "\\"),
        i.SQL_EXTRA_NAME_CHARACTERS: (s, ""),
        i.SQL_SUPPORTS_COLUMN_ALIASING: (b, True),
        i.SQL_NULL_PLUS_NULL_IS_NULL: (b, True),
        i.SQL_SUPPORTS_CONVERT: (InfoMember.INT32_TO_INT32_LIST_MAP, _supported_casts()),
        i.SQL_SUPPORTS_TABLE_CORRELATION_NAMES: (b, True),
        # Spark lets an alias repeat the table name; nothing forces it to differ.
        i.SQL_SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES: (b, False),
        i.SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY: (b, True),
        i.SQL_SUPPORTS_ORDER_BY_UNRELATED: (b, True),
        i.SQL_SUPPORTED_GROUP_BY: (i32, _mask(_GROUP_BY_UNRELATED, _GROUP_BY_BEYOND_SELECT)),
        i.SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE: (b, True),
        i.SQL_SUPPORTS_NON_NULLABLE_COLUMNS: (b, True),
        i.SQL_SUPPORTED_GRAMMAR: (i32, _mask(_MINIMUM_GRAMMAR, _CORE_GRAMMAR)),
        i.SQL_ANSI92_SUPPORTED_LEVEL: (i32, _mask(_ANSI92_ENTRY_SQL)),
        # Spark accepts key constraints as metadata but does not enforce them.
        i.SQL_SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY: (b, False),
        # FlightSql.proto calls this one an ordinal, but the Flight SQL JDBC driver reads it as a
        # bitmask (supportsFullOuterJoins tests bit 2): a mask of both levels reads right there,
        # and no client is known to read the ordinal (docs/clients.md).
        i.SQL_OUTER_JOINS_SUPPORT_LEVEL: (i32, _mask(_LIMITED_OUTER_JOINS, _FULL_OUTER_JOINS)),
        i.SQL_SCHEMA_TERM: (s, "schema"),
        i.SQL_PROCEDURE_TERM: (s, "procedure"),
        i.SQL_CATALOG_TERM: (s, "catalog"),
        i.SQL_CATALOG_AT_START: (b, True),
        i.SQL_SCHEMAS_SUPPORTED_ACTIONS: (i32, _mask(_ELEMENT_IN_PROCEDURE_CALLS)),
        i.SQL_CATALOGS_SUPPORTED_ACTIONS: (i32, _mask(_ELEMENT_IN_PROCEDURE_CALLS)),
        i.SQL_SUPPORTED_POSITIONED_COMMANDS: (i32, 0),
        i.SQL_SELECT_FOR_UPDATE_SUPPORTED: (b, False),
        i.SQL_STORED_PROCEDURES_SUPPORTED: (b, False),
        # Quantified comparisons (= ANY (subquery), > ALL (subquery)) do not parse.
        i.SQL_SUPPORTED_SUBQUERIES: (
            i32,
            _mask(_SUBQUERIES_IN_COMPARISONS, _SUBQUERIES_IN_EXISTS, _SUBQUERIES_IN_INS),
        ),
        i.SQL_CORRELATED_SUBQUERIES_SUPPORTED: (b, True),
        i.SQL_SUPPORTED_UNIONS: (i32, _mask(_UNION, _UNION_ALL)),
        i.SQL_MAX_ROW_SIZE_INCLUDES_BLOBS: (b, False),
        i.SQL_DEFAULT_TRANSACTION_ISOLATION: (i64, _TRANSACTION_NONE),
        i.SQL_TRANSACTIONS_SUPPORTED: (b, False),
        i.SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS: (i32, _mask(_TRANSACTION_NONE)),
        i.SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT: (b, False),
        i.SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED: (b, False),
        i.SQL_SUPPORTED_RESULT_SET_TYPES: (i32, _mask(_RESULT_SET_FORWARD_ONLY)),
        i.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_UNSPECIFIED: (
            i32,
            _mask(_CONCURRENCY_READ_ONLY),
        ),
        i.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_FORWARD_ONLY: (
            i32,
            _mask(_CONCURRENCY_READ_ONLY),
        ),
        i.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_SENSITIVE: (i32, 0),
        i.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_INSENSITIVE: (i32, 0),
        i.SQL_BATCH_UPDATES_SUPPORTED: (b, False),
        i.SQL_SAVEPOINTS_SUPPORTED: (b, False),
        i.SQL_NAMED_PARAMETERS_SUPPORTED: (b, False),
        i.SQL_LOCATORS_UPDATE_COPY: (b, False),
        i.SQL_STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED: (b, False),
    }
    # The limits, 541 to 561 but for the boolean 556, are 0: no limit, or none known.
    for info in SqlInfo:
        if i.SQL_MAX_BINARY_LITERAL_LENGTH <= info <= i.SQL_MAX_USERNAME_LENGTH:
            answers.setdefault(info, (i64, 0))
    return {int(info): answers[info] for info in sorted(answers)}


def _build_table(answers: Mapping[int, _Answer]) -> pa.Table:
    """The SQL_INFO table with one row per answer, in the mapping's order."""
    children: list[list[Any]] = [[] for _ in InfoMember]
    type_ids: list[int] = []
    offsets: list[int] = []
    for member, value in answers.values():
        offsets.append(len(children[member]))
        children[member].append(value)
        type_ids.append(int(member))
    arrays = [
        pa.array(values, type=SQL_INFO_VALUE.field(index).type)
        for index, values in enumerate(children)
    ]
    types = pa.array(type_ids, type=pa.int8())
    value_offsets = pa.array(offsets, type=pa.int32())
    value = pa.UnionArray.from_buffers(
        SQL_INFO_VALUE,
        len(type_ids),
        [None, types.buffers()[1], value_offsets.buffers()[1]],
        children=arrays,
    )
    names = pa.array(list(answers), type=pa.uint32())
    return pa.Table.from_arrays([names, value], schema=SQL_INFO)


class SqlInfoCatalog:
    """Answers ``CommandGetSqlInfo``; the table is built once, on first use."""

    def __init__(self, facts: EngineFacts) -> None:
        self._facts = facts
        self._lock = threading.Lock()
        self._table: pa.Table | None = None
        self._rows: dict[int, int] = {}

    def _full(self) -> pa.Table:
        with self._lock:
            if self._table is None:
                answers = _answers(self._facts)
                self._rows = {info: row for row, info in enumerate(answers)}
                self._table = _build_table(answers)
            return self._table

    @property
    def answered_ids(self) -> tuple[int, ...]:
        """Every id this server answers, ascending."""
        self._full()
        return tuple(self._rows)

    def table(self, ids: Sequence[int] = ()) -> pa.Table:
        """Rows for ``ids`` in the order asked; no ids means every id, ascending.

        Ids this server does not answer are left out, as the specification allows;
        an id asked twice is answered once.
        """
        full = self._full()
        wanted = list(dict.fromkeys(int(info) for info in ids))
        if not wanted:
            return full
        rows = [self._rows[info] for info in wanted if info in self._rows]
        return full.take(pa.array(rows, type=pa.int64()))
