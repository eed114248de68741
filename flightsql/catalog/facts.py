"""Gather :class:`EngineFacts` from a running Spark session.

Two cheap queries: the keyword list (``sql_keywords()``, which Spark 4 has)
and the built-in function names (``SHOW SYSTEM FUNCTIONS``).  Neither touches a
metastore.  Function names are sorted into the four JDBC/ODBC scalar-function
families by name: a name belongs to a family when it is one of the Spark
built-ins listed for it below *and* the running engine reports it, so the lists
never advertise a function this Spark lacks.  Aggregates, window, collection,
JSON and similar functions belong to none of the four families.

pyspark is only imported for type checking; a session is passed in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pyarrow

from flightsql.catalog.sql_info import EngineFacts

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["FALLBACK_KEYWORDS", "classify_functions", "engine_facts"]

_log = logging.getLogger(__name__)

#: Used when ``sql_keywords()`` is unavailable (older Spark versions): the keywords
#: Spark reserves in ANSI mode, from its "ANSI Compliance" documentation, plus
#: the statement keywords every Spark version parses.
FALLBACK_KEYWORDS: tuple[str, ...] = tuple(
    sorted(
        ["ALL", "ALTER", "AND", "ANY", "ARRAY", "AS", "AUTHORIZATION", "BETWEEN", "BOTH", "BY", "CASE", "CAST", "CHECK", "COLLATE", "COLUMN", "CONSTRAINT", "CREATE", "CROSS", "CUBE", "CURRENT", "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "CURRENT_USER", "DELETE", "DESCRIBE", "DISTINCT", "DROP", "ELSE", "END", "ESCAPE", "EXCEPT", "EXISTS", "FALSE", "FETCH", "FILTER", "FOR", "FOREIGN", "FROM", "FULL", "FUNCTION", "GRANT", "GROUP", "GROUPING", "HAVING", "IN", "INNER", "INSERT", "INTERSECT", "INTERVAL", "INTO", "IS", "JOIN", "LATERAL", "LEADING", "LEFT", "LIKE", "LIMIT", "LOCAL", "MERGE", "NATURAL", "NOT", "NULL", "OF", "OFFSET", "ON", "ONLY", "OR", "ORDER", "OUTER", "OVERLAPS", "PRIMARY", "REFERENCES", "RIGHT", "ROLLUP", "SELECT", "SESSION_USER", "SET", "SHOW", "SOME", "TABLE", "TABLESAMPLE", "THEN", "TIME", "TO", "TRAILING", "TRUE", "UNION", "UNIQUE", "UNKNOWN", "UPDATE", "USER", "USING", "VALUES", "WHEN", "WHERE", "WINDOW", "WITH"]
    )
)

_NUMERIC = frozenset(
    ["abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "bin", "bit_count", "bit_get", "bround", "cbrt", "ceil", "ceiling", "conv", "cos", "cosh", "cot", "csc", "degrees", "div", "e", "exp", "expm1", "factorial", "floor", "getbit", "greatest", "hex", "hypot", "least", "ln", "log", "log10", "log1p", "log2", "mod", "nanvl", "negative", "nullifzero", "pi", "pmod", "positive", "pow", "power", "radians", "rand", "randn", "random", "rint", "round", "sec", "shiftleft", "shiftright", "shiftrightunsigned", "sign", "signum", "sin", "sinh", "sqrt", "tan", "tanh", "try_add", "try_divide", "try_mod", "try_multiply", "try_subtract", "unhex", "uniform", "width_bucket", "zeroifnull"]
)

_STRING = frozenset(
    ["ascii", "base64", "bit_length", "btrim", "char", "char_length", "character_length", "chr", "collate", "collation", "concat", "concat_ws", "contains", "decode", "elt", "encode", "endswith", "find_in_set", "format_number", "format_string", "from_base32", "initcap", "instr", "is_valid_utf8", "jaro_winkler_similarity", "lcase", "left", "len", "length", "levenshtein", "locate", "lower", "lpad", "ltrim", "luhn_check", "make_valid_utf8", "mask", "octet_length", "overlay", "parse_url", "position", "printf", "quote", "randstr", "regexp_count", "regexp_extract", "regexp_extract_all", "regexp_instr", "regexp_like", "regexp_replace", "regexp_substr", "repeat", "replace", "reverse", "right", "rpad", "rtrim", "sentences", "soundex", "space", "split", "split_part", "startswith", "substr", "substring", "substring_index", "to_base32", "to_binary", "to_char", "to_number", "to_varchar", "translate", "trim", "try_parse_url", "try_to_binary", "try_to_number", "try_url_decode", "try_validate_utf8", "ucase", "unbase64", "upper", "url_decode", "url_encode", "validate_utf8"]
)

_DATETIME = frozenset(
    ["add_months", "convert_timezone", "curdate", "current_date", "current_time", "current_timestamp", "current_timezone", "date_add", "date_diff", "date_format", "date_from_unix_date", "date_part", "date_sub", "date_trunc", "dateadd", "datediff", "datepart", "day", "dayname", "dayofmonth", "dayofweek", "dayofyear", "extract", "from_unixtime", "from_utc_timestamp", "hour", "last_day", "localtime", "localtimestamp", "make_date", "make_dt_interval", "make_interval", "make_time", "make_timestamp", "make_timestamp_ltz", "make_timestamp_ntz", "make_ym_interval", "minute", "month", "monthname", "months_between", "next_day", "now", "quarter", "second", "session_window", "time_bucket", "time_diff", "time_from_micros", "time_from_millis", "time_from_seconds", "time_to_micros", "time_to_millis", "time_to_seconds", "time_trunc", "timestamp_micros", "timestamp_millis", "timestamp_nanos", "timestamp_seconds", "timestampadd", "timestampdiff", "to_date", "to_time", "to_timestamp", "to_timestamp_ltz", "to_timestamp_ntz", "to_unix_timestamp", "to_utc_timestamp", "trunc", "try_make_interval", "try_make_timestamp", "try_make_timestamp_ltz", "try_make_timestamp_ntz", "try_to_date", "try_to_time", "try_to_timestamp", "unix_date", "unix_micros", "unix_millis", "unix_nanos", "unix_seconds", "unix_timestamp", "weekday", "weekofyear", "window", "window_time", "year"]
)

_SYSTEM = frozenset(
    ["aes_decrypt", "aes_encrypt", "assert_true", "coalesce", "crc32", "current_catalog", "current_database", "current_schema", "current_user", "equal_null", "hash", "hmac", "if", "ifnull", "input_file_block_length", "input_file_block_start", "input_file_name", "isnotnull", "isnull", "java_method", "md5", "monotonically_increasing_id", "nullif", "nvl", "nvl2", "raise_error", "reflect", "session_user", "sha", "sha1", "sha2", "spark_partition_id", "try_aes_decrypt", "try_reflect", "typeof", "user", "uuid", "version", "xxhash64"]
)

_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def classify_functions(
    names: Iterable[str],
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Split function names into (numeric, string, system, datetime), each sorted.

    Operators (``+``, ``<=>``, ...) and names outside the four families are dropped.
    """
    reported = {name.lower() for name in names if _NAME.fullmatch(name.lower())}
    return (
        tuple(sorted(reported & _NUMERIC)),
        tuple(sorted(reported & _STRING)),
        tuple(sorted(reported & _SYSTEM)),
        tuple(sorted(reported & _DATETIME)),
    )


def _keywords(spark: SparkSession) -> tuple[str, ...]:
    try:
        rows = spark.sql("SELECT keyword FROM sql_keywords()").collect()
    except Exception as error:  # noqa: BLE001 - Spark without sql_keywords(), or a broken session
        _log.warning("sql_keywords() failed, using the built-in keyword list: %s", error)
        return FALLBACK_KEYWORDS
    return tuple(sorted({str(row[0]).upper() for row in rows}))


def _function_names(spark: SparkSession) -> list[str]:
    try:
        return [str(row[0]) for row in spark.sql("SHOW SYSTEM FUNCTIONS").collect()]
    except Exception as error:  # noqa: BLE001 - any failure falls back to the catalog API
        _log.warning("SHOW SYSTEM FUNCTIONS failed, listing the catalog: %s", error)
        return [function.name for function in spark.catalog.listFunctions()]


def engine_facts(spark: SparkSession, server_version: str) -> EngineFacts:
    """What ``spark`` and this process report about themselves."""
    numeric, string, system, datetime = classify_functions(_function_names(spark))
    return EngineFacts(
        server_version=server_version,
        arrow_version=pyarrow.__version__,
        spark_version=str(spark.version),
        keywords=_keywords(spark),
        numeric_functions=numeric,
        string_functions=string,
        system_functions=system,
        datetime_functions=datetime,
    )
