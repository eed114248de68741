"""The CommandGetSqlInfo answers, and the engine facts they are built from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from flightsql.catalog.facts import FALLBACK_KEYWORDS, classify_functions, engine_facts
from flightsql.catalog.schemas import SQL_INFO
from flightsql.catalog.sql_info import EngineFacts, SqlInfoCatalog

STRING, BOOL, BIGINT, INT32, LIST, MAP = 0, 1, 2, 3, 4, 5

# The union member FlightSql.proto gives each id ("UTF-8 string", "boolean",
# "int64", "int32 bitmask", "UTF-8 string list", "map<int32, list<int32>>").
# Four ids the proto calls an "int32 ordinal" are int64 instead, because the
# reference servers send them so and the JDBC and ODBC drivers read them so:
# SQL_IDENTIFIER_CASE (503), SQL_QUOTED_IDENTIFIER_CASE (505),
# SQL_NULL_ORDERING (507) and SQL_DEFAULT_TRANSACTION_ISOLATION (562).
SPEC_MEMBER: dict[int, int] = {
    0: STRING, 1: STRING, 2: STRING,
    3: BOOL, 4: BOOL, 5: BOOL,
    6: STRING, 7: STRING,
    8: INT32,  # SqlSupportedTransaction
    9: BOOL, 10: BOOL, 11: BOOL,
    100: INT32, 101: INT32,  # timeouts in milliseconds
    500: BOOL, 501: BOOL, 502: BOOL,
    503: BIGINT,
    504: STRING,
    505: BIGINT,
    506: BOOL,
    507: BIGINT,
    508: LIST, 509: LIST, 510: LIST, 511: LIST, 512: LIST,
    513: STRING, 514: STRING,
    515: BOOL, 516: BOOL,
    517: MAP,
    518: BOOL, 519: BOOL, 520: BOOL, 521: BOOL,
    522: INT32,
    523: BOOL, 524: BOOL,
    525: INT32, 526: INT32,
    527: BOOL,
    528: INT32,  # SqlOuterJoinsSupportLevel ordinal
    529: STRING, 530: STRING, 531: STRING,
    532: BOOL,
    533: INT32, 534: INT32, 535: INT32,
    536: BOOL, 537: BOOL,
    538: INT32,
    539: BOOL,
    540: INT32,
    541: BIGINT, 542: BIGINT, 543: BIGINT, 544: BIGINT, 545: BIGINT, 546: BIGINT,
    547: BIGINT, 548: BIGINT, 549: BIGINT, 550: BIGINT, 551: BIGINT, 552: BIGINT,
    553: BIGINT, 554: BIGINT, 555: BIGINT,
    556: BOOL,
    557: BIGINT, 558: BIGINT, 559: BIGINT, 560: BIGINT, 561: BIGINT,
    562: BIGINT,
    563: BOOL,
    564: INT32,
    565: BOOL, 566: BOOL,
    567: INT32, 568: INT32, 569: INT32, 570: INT32, 571: INT32,
    572: BOOL, 573: BOOL, 574: BOOL, 575: BOOL, 576: BOOL,
}  # fmt: skip

PYTHON_TYPE = {STRING: str, BOOL: bool, BIGINT: int, INT32: int, LIST: list, MAP: list}

FACTS = EngineFacts(
    server_version="1.2.3",
    arrow_version="26.0.1",
    spark_version="4.3.0",
    keywords=("FROM", "SELECT", "WHERE"),
    numeric_functions=("abs", "round"),
    string_functions=("lower", "upper"),
    system_functions=("current_user",),
    datetime_functions=("current_date", "year"),
)


@pytest.fixture(scope="module")
def catalog() -> SqlInfoCatalog:
    return SqlInfoCatalog(FACTS)


def _answers(table: pa.Table) -> dict[int, tuple[int, Any]]:
    """info id -> (union type code, Python value)."""
    names = table["info_name"].to_pylist()
    union = table["value"].combine_chunks()
    codes = union.type_codes.to_pylist()
    return {
        name: (code, value)
        for name, code, value in zip(names, codes, union.to_pylist(), strict=True)
    }


def test_spec_table_covers_the_required_blocks() -> None:
    assert set(SPEC_MEMBER) == {*range(0, 12), 100, 101, *range(500, 577)}


def test_every_id_is_answered_in_id_order(catalog: SqlInfoCatalog) -> None:
    table = catalog.table()
    assert table.schema.equals(SQL_INFO)
    assert table["info_name"].to_pylist() == sorted(SPEC_MEMBER)
    assert catalog.answered_ids == tuple(sorted(SPEC_MEMBER))


@pytest.mark.parametrize("info", sorted(SPEC_MEMBER))
def test_each_id_uses_the_member_the_spec_assigns(catalog: SqlInfoCatalog, info: int) -> None:
    code, value = _answers(catalog.table([info]))[info]
    assert code == SPEC_MEMBER[info]
    assert type(value) is PYTHON_TYPE[code]


def test_values_round_trip_through_ipc(catalog: SqlInfoCatalog) -> None:
    table = catalog.table()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    restored = pa.ipc.open_stream(sink.getvalue()).read_all()
    assert restored.schema.equals(SQL_INFO)
    assert restored.to_pylist() == table.to_pylist()
    restored.validate(full=True)


def test_filtering_keeps_the_order_asked_and_drops_unknown_ids(
    catalog: SqlInfoCatalog,
) -> None:
    table = catalog.table([504, 8, 9999, 504, 0, 10_000])
    assert table.schema.equals(SQL_INFO)
    assert table["info_name"].to_pylist() == [504, 8, 0]
    assert _answers(table)[504] == (STRING, "`")
    assert catalog.table([9999]).num_rows == 0
    assert catalog.table([9999]).schema.equals(SQL_INFO)


def test_facts_reach_the_answers(catalog: SqlInfoCatalog) -> None:
    answers = _answers(catalog.table())
    assert answers[0] == (STRING, "Spark Flight SQL")
    assert answers[1] == (STRING, "1.2.3")
    assert answers[2] == (STRING, "26.0.1")
    assert answers[508] == (LIST, ["FROM", "SELECT", "WHERE"])
    assert answers[509] == (LIST, ["abs", "round"])
    assert answers[510] == (LIST, ["lower", "upper"])
    assert answers[511] == (LIST, ["current_user"])
    assert answers[512] == (LIST, ["current_date", "year"])


def test_values_are_true_of_spark_sql(catalog: SqlInfoCatalog) -> None:
    value = {info: answer[1] for info, answer in _answers(catalog.table()).items()}
    assert value[3] is False  # read-write
    assert value[4] is True and value[5] is False  # SQL, no Substrait
    assert value[8] == 0  # SQL_SUPPORTED_TRANSACTION_NONE
    assert value[9] is True  # cancellation
    assert value[10] is True and value[11] is False  # ingestion, without transactions
    assert value[100] == 0 and value[101] == 0
    assert (value[500], value[501], value[502]) == (False, True, True)
    assert value[503] == 1 and value[505] == 1  # SQL_CASE_SENSITIVITY_CASE_INSENSITIVE
    assert value[507] == 1  # SQL_NULLS_SORTED_LOW
    assert value[513] == "\\"
    assert value[522] == 0b11  # GROUP BY unrelated and beyond select
    assert value[528] == 0b110  # limited and full outer joins, as the JDBC driver reads the value: a bitmask
    assert value[538] == 0b111  # comparisons, EXISTS, IN; no quantified subqueries
    assert value[540] == 0b11  # UNION and UNION ALL
    assert value[562] == 0 and value[563] is False  # no transactions
    limits = [*range(541, 556), *range(557, 562)]
    assert all(value[info] == 0 for info in limits)


def test_supported_conversions_map(catalog: SqlInfoCatalog) -> None:
    code, entries = _answers(catalog.table([517]))[517]
    conversions = dict(entries)
    varchar, integer, bigint, date, timestamp, bit = 19, 7, 0, 4, 16, 2
    assert integer in conversions[varchar] and varchar in conversions[integer]
    assert bigint in conversions[integer]
    assert timestamp in conversions[date] and date in conversions[timestamp]
    assert bit in conversions[integer]
    assert integer not in conversions[date]  # CAST(DATE AS INT) fails in ANSI mode
    assert all(values == sorted(set(values)) for values in conversions.values())


def test_adbc_style_read_of_server_transaction(catalog: SqlInfoCatalog) -> None:
    # The ADBC Flight SQL driver reads id 8 only from union type code 3.
    union = catalog.table([8])["value"].combine_chunks()
    assert union.type_codes.to_pylist() == [3]
    assert union.field(3)[union.offsets[0].as_py()].as_py() == 0


def test_answers_are_built_once(catalog: SqlInfoCatalog) -> None:
    assert catalog.table() is catalog.table()


def test_classify_functions_by_name() -> None:
    names = ["abs", "upper", "current_date", "current_user", "sum", "+", "<=>", "ROUND"]
    numeric, string, system, datetime = classify_functions(names)
    assert numeric == ("abs", "round")
    assert string == ("upper",)
    assert system == ("current_user",)
    assert datetime == ("current_date",)


class _BrokenSql:
    """A session whose SQL always fails, so the facts fall back."""

    version = "9.9.9"

    class catalog:  # noqa: N801 - mirrors SparkSession.catalog
        @staticmethod
        def listFunctions() -> list[Any]:  # noqa: N802 - pyspark's name
            return [type("F", (), {"name": name})() for name in ("abs", "lower")]

    def sql(self, query: str) -> Any:
        raise RuntimeError(f"cannot run {query}")


def test_engine_facts_fall_back_when_queries_fail() -> None:
    facts = engine_facts(_BrokenSql(), "0.0.1")  # type: ignore[arg-type]
    assert facts.keywords == FALLBACK_KEYWORDS
    assert "SELECT" in facts.keywords
    assert facts.numeric_functions == ("abs",)
    assert facts.string_functions == ("lower",)
    assert facts.spark_version == "9.9.9"


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("warehouse")))
        .getOrCreate()
    )
    yield session
    session.stop()


def test_engine_facts_from_a_real_spark_session(spark: Any) -> None:
    facts = engine_facts(spark, "0.1.0")
    assert facts.server_version == "0.1.0"
    assert facts.spark_version == spark.version
    assert facts.arrow_version == pa.__version__
    assert "SELECT" in facts.keywords and "FROM" in facts.keywords
    assert "abs" in facts.numeric_functions
    assert "upper" in facts.string_functions
    assert "current_date" in facts.datetime_functions
    assert "current_user" in facts.system_functions
    answers = _answers(SqlInfoCatalog(facts).table([508, 509]))
    assert "SELECT" in answers[508][1]
    assert "abs" in answers[509][1]
