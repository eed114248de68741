"""Bulk ingest (CommandStatementIngest): stage the uploaded stream, then load it.

The stream is written to a Parquet file as it arrives (never held whole in memory),
then Spark loads it into the target table according to the table definition
options: ADBC's create, append, replace and create_append modes map onto
(if_not_exist, if_exists) pairs.  Temporary tables are session views over their
own staging directory, which later appends extend.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from flightsql.errors import AlreadyExists, InvalidArgument, NotFound, Unimplemented
from flightsql.protocol.commands import CommandStatementIngest
from flightsql.server.metadata import quote

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def stage(batches: Iterator[pa.RecordBatch], schema: pa.Schema, directory: Path) -> tuple[Path, int]:
    """Write the uploaded batches to one Parquet file in ``directory``; returns (file, rows)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"part-{uuid.uuid4().hex}.parquet"
    rows = 0
    with pq.ParquetWriter(str(path), schema, coerce_timestamps="us", allow_truncated_timestamps=True) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return path, rows


MAX_NAME_CHARS = 128


def check_identifier(kind: str, name: str) -> None:
    """A catalog, schema or table name of an ingest: a name, never a path.

    Spark derives a managed table's directory from its schema and table names, so a name
    like ``../../x`` would put files outside the warehouse: INVALID_ARGUMENT names the rule."""
    if not name:
        raise InvalidArgument(f"CommandStatementIngest: the {kind} name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidArgument(f"CommandStatementIngest: the {kind} name is longer than {MAX_NAME_CHARS} characters")
    if any(ch in name for ch in "/\\") or name in (".", "..") or name.startswith("."):
        raise InvalidArgument(
            f"CommandStatementIngest: the {kind} name {name!r} looks like a path: names may not contain "
            "'/' or '\\' nor start with '.'"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidArgument(f"CommandStatementIngest: the {kind} name contains control characters")


def target_name(command: CommandStatementIngest) -> str:
    if not command.table:
        raise InvalidArgument("CommandStatementIngest needs a target table name")
    check_identifier("table", command.table)
    for kind, part in (("catalog", command.catalog), ("schema", command.schema)):
        if part:
            check_identifier(kind, part)
    if command.temporary:
        if command.catalog or command.schema:
            raise InvalidArgument("a temporary table takes no catalog or schema")
        return quote(command.table)
    parts = [p for p in (command.catalog, command.schema, command.table) if p]
    return ".".join(quote(p) for p in parts)


def load(
    spark: SparkSession, command: CommandStatementIngest, staged: Path, rows: int, temp_root: Path
) -> int:
    """Load a staged Parquet file into the target table; returns rows ingested."""
    if command.transaction_id:
        raise Unimplemented("CommandStatementIngest: transactions are not supported")
    name = target_name(command)
    if_not_exist = command.if_not_exist if command.if_not_exist != "unspecified" else "create"
    if_exists = command.if_exists if command.if_exists != "unspecified" else "fail"
    exists = spark.catalog.tableExists(name)
    if exists and if_exists == "fail":
        raise AlreadyExists(f"table {name} already exists")
    if not exists and if_not_exist == "fail":
        raise NotFound(f"table {name} does not exist")
    if command.temporary:
        return _load_temporary(spark, name, command.table, staged, rows, exists, if_exists, temp_root)
    df = spark.read.parquet(str(staged))
    if not exists or if_exists == "replace":
        df.write.mode("overwrite").saveAsTable(name) if exists else df.write.saveAsTable(name)
    else:
        columns = spark.table(name).columns
        if len(columns) != len(df.columns):
            raise InvalidArgument(
                f"cannot append {len(df.columns)} columns to {name}, which has {len(columns)}"
            )
        df.write.insertInto(name)
    return rows


#: the directory of each temporary table: named by the server, never after the table
_TEMPORARY_DIRS: dict[tuple[int, str], str] = {}
_TEMPORARY_LOCK = threading.Lock()


def _temporary_dir(spark: SparkSession, table: str, temp_root: Path, fresh: bool) -> Path:
    """The server-named directory of a session's temporary table, inside ``temp_root``."""
    with _TEMPORARY_LOCK:
        key = (id(spark), table)
        if fresh or key not in _TEMPORARY_DIRS:
            _TEMPORARY_DIRS[key] = uuid.uuid4().hex
        directory = (temp_root / _TEMPORARY_DIRS[key]).resolve()
    if directory.parent != temp_root.resolve():
        raise InvalidArgument("temporary table directory escapes its root")  # cannot happen: a uuid names it
    return directory


def _load_temporary(
    spark: SparkSession, name: str, table: str, staged: Path, rows: int,
    exists: bool, if_exists: str, temp_root: Path,
) -> int:
    fresh = not exists or if_exists == "replace"
    old = _temporary_dir(spark, table, temp_root, fresh=False) if fresh else None
    directory = _temporary_dir(spark, table, temp_root, fresh)
    if old is not None and old != directory:
        shutil.rmtree(old, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    staged.rename(directory / staged.name)
    spark.read.parquet(str(directory)).createOrReplaceTempView(table)
    return rows
