"""Structured, leveled logs for a node: one line per record, saying which query it is about.

Two formats, chosen with ``--log-format``:

* ``text``: ``2026-11-23T02:30:00.123Z INFO flightmanager.manager query=<id> node=<node> message``,
  a traceback (if any) on the lines that follow;
* ``json``: one object per line with ``ts``, ``level``, ``logger``, ``message``, ``query``
  and ``node`` (when known), ``exception`` (a formatted traceback), and any field a
  caller passed with ``extra=``.

The query comes from :mod:`flightmanager.log_context`, set where a query's work begins;
the node id is set once it is known (:func:`set_node`).  Times are UTC.

PySpark logs every SQL error a user makes at ERROR, with a JVM stack, on its own
handler (``SQLQueryContextLogger``).  The client gets that error already, so here it
becomes one DEBUG line without the stack.  Spark's JVM logs through log4j2:
:func:`jvm_config` gives it the same line format (the node passes it at start).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

from flightmanager.log_context import current_query

FORMATS = ("text", "json")

#: loggers that are chatty at INFO and below
_NOISY = ("py4j", "pyspark")
#: PySpark loggers that report user SQL errors with a stack, on their own handler
_SPARK_ERROR_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")

_node: str | None = None

#: attributes every LogRecord has; anything else on a record was passed with ``extra=``
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "query", "node", "taskName",
}


def set_node(node_id: str | None) -> None:
    """Name the node on every line from now on."""
    global _node
    _node = node_id


class ContextFilter(logging.Filter):
    """Adds ``query`` (the current query, unless the caller gave one) and ``node`` to records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "query", None) is None:
            record.query = current_query()
        if getattr(record, "node", None) is None:
            record.node = _node
        return True


def timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-11-23T02:30:00.123Z``."""
    seconds, millis = divmod(round(created * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [timestamp(record.created), record.levelname, record.name]
        query, node = getattr(record, "query", None), getattr(record, "node", None)
        if query:
            parts.append(f"query={query}")
        if node:
            parts.append(f"node={node}")
        parts.append(record.getMessage())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("query", "node"):
            value = getattr(record, key, None)
            if value:
                doc[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False, separators=(",", ":"))


class _Demoted(logging.Handler):
    """Re-logs a PySpark SQL error report as one DEBUG line, without the stack."""

    def emit(self, record: logging.LogRecord) -> None:
        context = getattr(record, "context", None) or {}
        error_class = context.get("errorClass") if isinstance(context, dict) else None
        first_line = record.getMessage().strip().splitlines()[:1]
        logging.getLogger("flightsql.spark").debug(
            "Spark reported %s: %s", error_class or "an error", first_line[0] if first_line else ""
        )


def _quiet_spark_error_loggers() -> None:
    try:
        from pyspark.logger import PySparkLogger
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return
    for name in _SPARK_ERROR_LOGGERS:
        # created as PySpark creates them (its calls pass extra keywords), then rewired
        logger = PySparkLogger.getLogger(name)
        for handler in list(logger.handlers):
            if not isinstance(handler, _Demoted):
                logger.removeHandler(handler)
        if not logger.handlers:
            logging.Logger.addHandler(logger, _Demoted())  # PySparkLogger.addHandler would set its JSON formatter
        logger.setLevel(logging.ERROR)


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("flightsql.threads").error(
        "uncaught exception in thread %s", thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
    )


#: JVM stack trace lines kept in text logs (JSON logs keep whole traces, on one line)
JVM_STACK_LINES = 12

_JVM_JSON_TEMPLATE = json.dumps({
    "ts": {"$resolver": "timestamp", "pattern": {"format": "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", "timeZone": "UTC"}},
    "level": {"$resolver": "level", "field": "name"},
    "logger": {"$resolver": "logger", "field": "name"},
    "message": {"$resolver": "message", "stringified": True},
    "thread": {"$resolver": "thread", "field": "name"},
    "exception": {"$resolver": "exception", "field": "stackTrace", "stackTrace": {"stringified": True}},
})


#: JVM loggers that report what is not a problem.  The first four are quieted by Spark's
#: own default log4j2 profile too (a metastore logs "already exists" and "no such object"
#: with a stack, which Spark handles); the last two complain on every Hive session that
#: Hive's authorization is not set up.
_JVM_QUIET = (
    ("org.sparkproject.jetty.util.component.AbstractLifeCycle", "error"),
    ("org.apache.hadoop.hive.metastore.RetryingHMSHandler", "fatal"),
    ("org.apache.hadoop.hive.metastore.ObjectStore", "error"),
    ("org.apache.parquet.CorruptStatistics", "error"),
    ("org.apache.hadoop.hive.conf.HiveConf", "error"),
    ("org.apache.hadoop.hive.ql.session.SessionState", "error"),
)


def jvm_config(fmt: str) -> str:
    """A log4j2 configuration for Spark's JVM whose lines look like ours: same format,
    UTC times, WARN and above (Spark's INFO is a line per task)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    if fmt == "json":
        layout = [
            "appender.stderr.layout.type = JsonTemplateLayout",
            f"appender.stderr.layout.eventTemplate = {_JVM_JSON_TEMPLATE}",
        ]
    else:
        layout = [
            "appender.stderr.layout.type = PatternLayout",
            "appender.stderr.layout.pattern = %d{yyyy-MM-dd'T'HH:mm:ss.SSS}{UTC}Z %p %c %m%n"
            f"%ex{{{JVM_STACK_LINES}}}",
        ]
    return "\n".join([
        "# written by flightsql serve at every start: Spark's JVM logs in the node's format",
        "status = error",
        "appender.stderr.type = Console",
        "appender.stderr.name = stderr",
        "appender.stderr.target = SYSTEM_ERR",
        *layout,
        "rootLogger.level = warn",
        "rootLogger.appenderRef.stderr.ref = stderr",
        *(
            f"logger.quiet{i}.name = {name}\nlogger.quiet{i}.level = {level}"
            for i, (name, level) in enumerate(_JVM_QUIET)
        ),
        "",
    ])


def configure(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Send every log record, one line each, to ``stream`` (standard error by default).

    ``level`` is DEBUG, INFO, WARNING or ERROR; ``fmt`` is ``text`` or ``json``.
    Calling it again replaces the previous configuration."""
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "flightsql", False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.flightsql = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(number)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(number, logging.WARNING))
    _quiet_spark_error_loggers()
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception
