"""Log lines of a node: format, the query they concern, exceptions, PySpark's error reports."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from typing import Iterator

import pytest

from flightmanager.log_context import current_query, iterate_in_query, query_context
from flightsql import logs

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<level>[A-Z]+) (?P<rest>.*)$")


@pytest.fixture()
def stream() -> Iterator[io.StringIO]:
    """Logging configured by ``logs.configure`` for the test, the previous state restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, threading.excepthook)
    saved_levels = {name: logging.getLogger(name).level for name in ("py4j", "pyspark")}
    buffer = io.StringIO()
    yield buffer
    for handler in list(root.handlers):
        if handler not in saved[0]:
            root.removeHandler(handler)
    root.setLevel(saved[1])
    threading.excepthook = saved[2]
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)
    logs.set_node(None)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_text_line_has_utc_time_level_logger_query_node_and_message(stream: io.StringIO) -> None:
    logs.configure("INFO", "text", stream)
    logs.set_node("host-a:31337")
    with query_context("4f1c2a"):
        logging.getLogger("flightmanager.manager").info("served %d rows", 5)
    (line,) = lines(stream)
    match = TEXT_LINE.match(line)
    assert match, line
    assert match["level"] == "INFO"
    assert match["rest"] == "flightmanager.manager query=4f1c2a node=host-a:31337 served 5 rows"


def test_a_line_about_no_query_has_no_query_field(stream: io.StringIO) -> None:
    logs.configure("INFO", "text", stream)
    logging.getLogger("flightsql.node").warning("listening on loopback only")
    (line,) = lines(stream)
    assert line.endswith(" WARNING flightsql.node listening on loopback only")
    assert "query=" not in line and "node=" not in line


def test_the_level_filters_lines(stream: io.StringIO) -> None:
    logs.configure("warning", "text", stream)
    log = logging.getLogger("flightmanager.manager")
    log.info("hidden")
    log.debug("hidden too")
    log.error("shown")
    assert [line.split(" ", 3)[3] for line in lines(stream)] == ["shown"]


def test_timestamps_are_utc_with_milliseconds() -> None:
    assert logs.timestamp(0.5) == "1970-01-01T00:00:00.500Z"
    assert logs.timestamp(1795401000.123) == "2026-11-23T02:30:00.123Z"


def test_json_line_has_fields_query_node_and_extras(stream: io.StringIO) -> None:
    logs.configure("INFO", "json", stream)
    logs.set_node("host-a:31337")
    with query_context("9e8d"):
        logging.getLogger("flightmanager.manager").info("served %d rows", 7, extra={"rows": 7, "path": ["a"]})
    (line,) = lines(stream)
    doc = json.loads(line)
    assert doc["level"] == "INFO"
    assert doc["logger"] == "flightmanager.manager"
    assert doc["message"] == "served 7 rows"
    assert doc["query"] == "9e8d" and doc["node"] == "host-a:31337"
    assert doc["rows"] == 7 and doc["path"] == ["a"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["ts"])


def test_a_caller_may_name_the_query_itself(stream: io.StringIO) -> None:
    logs.configure("INFO", "json", stream)
    with query_context("from-context"):
        logging.getLogger("x").info("about another query", extra={"query": "named"})
    assert json.loads(lines(stream)[0])["query"] == "named"


def test_exceptions_follow_a_text_line(stream: io.StringIO) -> None:
    logs.configure("INFO", "text", stream)
    try:
        raise ValueError("boom <b>")
    except ValueError:
        logging.getLogger("flightsql.threads").exception("it broke")
    text = lines(stream)
    assert text[0].endswith(" ERROR flightsql.threads it broke")
    assert text[1] == "Traceback (most recent call last):"
    assert text[-1] == "ValueError: boom <b>"


def test_exceptions_stay_on_one_json_line(stream: io.StringIO) -> None:
    logs.configure("INFO", "json", stream)
    with query_context("q1"):
        try:
            raise KeyError("missing")
        except KeyError:
            logging.getLogger("flightmanager.manager").exception("it broke")
    (line,) = lines(stream)
    doc = json.loads(line)
    assert doc["message"] == "it broke" and doc["query"] == "q1"
    assert doc["exception"].startswith("Traceback (most recent call last):")
    assert doc["exception"].rstrip().endswith("KeyError: 'missing'")


def test_configure_again_replaces_the_handler(stream: io.StringIO) -> None:
    logs.configure("INFO", "text", stream)
    logs.configure("INFO", "json", stream)
    logging.getLogger("x").info("once")
    assert len(lines(stream)) == 1
    assert json.loads(lines(stream)[0])["message"] == "once"


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "text"), ("INFO", "xml")])
def test_unknown_level_or_format_is_refused(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="unknown log"):
        logs.configure(level, fmt, io.StringIO())


def test_uncaught_thread_exceptions_become_log_records(stream: io.StringIO) -> None:
    logs.configure("INFO", "json", stream)

    def crash() -> None:
        raise RuntimeError("worker died")

    thread = threading.Thread(target=crash, name="spool-writer")
    thread.start()
    thread.join(10)
    doc = json.loads(lines(stream)[0])
    assert doc["message"] == "uncaught exception in thread spool-writer"
    assert "RuntimeError: worker died" in doc["exception"]


def test_pyspark_sql_error_reports_become_one_debug_line(stream: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    from pyspark.logger import PySparkLogger

    logs.configure("DEBUG", "text", stream)
    try:
        raise RuntimeError("JVM stack would be here")
    except RuntimeError:
        # what PySpark does for every SQL error it converts
        reporter = PySparkLogger.getLogger("SQLQueryContextLogger")
        reporter.propagate = False
        reporter.exception("[PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'.\nmore", errorClass="PARSE_SYNTAX_ERROR")
    text = lines(stream)
    assert len(text) == 1, text
    assert text[0].endswith(" DEBUG flightsql.spark Spark reported PARSE_SYNTAX_ERROR: "
                            "[PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'.")
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "PARSE_SYNTAX_ERROR" not in captured.err


def test_a_stream_logs_as_its_query_and_leaves_nothing_behind(stream: io.StringIO) -> None:
    logs.configure("INFO", "json", stream)
    log = logging.getLogger("flightmanager.manager")

    def batches(name: str) -> Iterator[int]:
        try:
            for i in range(2):
                log.info("%s batch %d", name, i)
                yield i
        finally:
            log.info("%s closed", name)

    first = iterate_in_query("q-first", batches("first"))
    second = iterate_in_query("q-second", batches("second"))
    # one thread interleaves two streams, as a pooled server thread may
    next(first)
    next(second)
    assert current_query() is None
    log.info("between steps")
    next(first)
    second.close()
    assert list(first) == []
    records = [json.loads(line) for line in lines(stream)]
    about = {r["message"]: r.get("query") for r in records}
    assert about == {
        "first batch 0": "q-first", "second batch 0": "q-second", "between steps": None,
        "first batch 1": "q-first", "second closed": "q-second", "first closed": "q-first",
    }


def test_jvm_configuration_matches_the_format() -> None:
    text = dict(line.split(" = ", 1) for line in logs.jvm_config("text").splitlines() if " = " in line)
    assert text["appender.stderr.layout.type"] == "PatternLayout"
    assert text["appender.stderr.layout.pattern"].startswith("%d{yyyy-MM-dd'T'HH:mm:ss.SSS}{UTC}Z %p %c %m%n")
    assert text["rootLogger.level"] == "warn"
    assert text["appender.stderr.target"] == "SYSTEM_ERR"
    quiet = {text[k]: text[k.replace(".name", ".level")] for k in text if k.startswith("logger.") and k.endswith(".name")}
    assert quiet["org.apache.hadoop.hive.metastore.RetryingHMSHandler"] == "fatal"
    as_json = dict(line.split(" = ", 1) for line in logs.jvm_config("json").splitlines() if " = " in line)
    assert as_json["appender.stderr.layout.type"] == "JsonTemplateLayout"
    template = json.loads(as_json["appender.stderr.layout.eventTemplate"])
    assert {"ts", "level", "logger", "message", "exception"} <= set(template)
    assert template["ts"]["pattern"]["timeZone"] == "UTC"
    with pytest.raises(ValueError):
        logs.jvm_config("xml")
