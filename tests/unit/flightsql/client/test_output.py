"""Where `flightsql query` puts a result: files written batch by batch, and the printed table."""

from __future__ import annotations

import datetime
import decimal
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as csv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from flightsql.client.errors import UsageError
from flightsql.client.output import CsvSink, IpcSink, ParquetSink
from flightsql.client.table import TableSink, format_value

SCHEMA = pa.schema([("id", pa.int64()), ("city", pa.string()), ("fare", pa.decimal128(8, 2))])


def _batches(count: int, rows: int) -> list[pa.RecordBatch]:
    out = []
    for b in range(count):
        ids = list(range(b * rows, (b + 1) * rows))
        out.append(pa.record_batch([
            pa.array(ids, pa.int64()),
            pa.array([None if i % 7 == 0 else f"city-{i % 5}" for i in ids]),
            pa.array([decimal.Decimal(i % 1000) / 100 for i in ids], pa.decimal128(8, 2)),
        ], schema=SCHEMA))
    return out


def _write(sink, batches):  # type: ignore[no-untyped-def]
    sink.begin(SCHEMA)
    for batch in batches:
        sink.write(batch)
    sink.finish()
    return sink


def _read(path: Path, kind: str) -> pa.Table:
    if kind == "parquet":
        return pq.read_table(path)
    if kind == "csv":
        # NULL is an empty unquoted field; every string is quoted.
        options = csv.ConvertOptions(column_types=SCHEMA, strings_can_be_null=True, quoted_strings_can_be_null=False)
        return csv.read_csv(path, convert_options=options)
    if kind == "file":
        return ipc.open_file(pa.memory_map(str(path))).read_all()
    return ipc.open_stream(pa.memory_map(str(path))).read_all()


@pytest.mark.parametrize(("kind", "name"), [
    ("parquet", "r.parquet"), ("csv", "r.csv"), ("file", "r.arrow"), ("stream", "r.arrows"),
])
def test_files_read_back_equal(tmp_path: Path, kind: str, name: str) -> None:
    path = tmp_path / name
    sinks = {"parquet": ParquetSink, "csv": CsvSink}
    sink = sinks[kind](path) if kind in sinks else IpcSink(path, stream=kind == "stream")
    batches = _batches(5, 1000)
    _write(sink, batches)
    assert sink.rows == 5000
    assert _read(path, kind).equals(pa.Table.from_batches(batches))
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_arrow_file_and_stream_formats_differ(tmp_path: Path) -> None:
    _write(IpcSink(tmp_path / "a.arrow", stream=False), _batches(1, 10))
    _write(IpcSink(tmp_path / "a.arrows", stream=True), _batches(1, 10))
    with pytest.raises(pa.ArrowInvalid):
        ipc.open_file(tmp_path / "a.arrows")
    assert ipc.open_file(tmp_path / "a.arrow").num_record_batches == 1


def test_parquet_row_groups_are_bounded(tmp_path: Path) -> None:
    class Small(ParquetSink):
        ROW_GROUP_ROWS = 2500

    _write(Small(tmp_path / "r.parquet"), _batches(10, 1000))
    meta = pq.ParquetFile(tmp_path / "r.parquet").metadata
    assert meta.num_rows == 10000
    assert meta.num_row_groups == 4  # 3000, 3000, 3000, then the 1000 left at the end
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == 3000


def test_an_aborted_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    path.write_bytes(b"previous result")
    sink = ParquetSink(path)
    sink.begin(SCHEMA)
    sink.write(_batches(1, 100)[0])
    assert sink.partial.exists()
    sink.abort()
    assert path.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["r.parquet"]


def test_empty_result_still_has_its_columns(tmp_path: Path) -> None:
    _write(ParquetSink(tmp_path / "r.parquet"), [])
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.num_rows == 0 and table.schema.names == ["id", "city", "fare"]


def test_csv_refuses_nested_columns(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("tags", pa.list_(pa.string()))])
    with pytest.raises(UsageError, match="CSV cannot hold column 'tags'"):
        CsvSink(tmp_path / "r.csv").begin(schema)
    assert not list(tmp_path.iterdir())


def test_table_keeps_only_the_first_rows_and_counts_the_rest() -> None:
    out = io.StringIO()
    sink = TableSink(max_rows=3, out=out)
    _write(sink, _batches(4, 1000))
    assert len(sink.cells) == 3 and sink.rows == 4000
    text = out.getvalue()
    assert "first 3 of 4,000 rows" in text
    lines = text.splitlines()
    assert lines[0].split() == ["id", "city", "fare"]
    assert lines[2].split() == ["0", "NULL", "0.00"]
    assert lines[3].split() == ["1", "city-1", "0.01"]


def test_table_with_no_limit_and_no_rows() -> None:
    everything = TableSink(max_rows=0, out=io.StringIO())
    _write(everything, _batches(2, 50))
    assert len(everything.cells) == 100 and everything.footer() == "100 rows"
    empty = TableSink(max_rows=10, out=io.StringIO())
    _write(empty, [])
    assert empty.footer() == "0 rows" and "city" in empty.out.getvalue()  # type: ignore[union-attr]


def test_table_in_a_pipe_is_never_cut_and_shows_markup_as_text() -> None:
    long_value = "x" * 300 + "[bold]end[/bold]"
    out = io.StringIO()
    sink = TableSink(max_rows=10, out=out)
    sink.begin(pa.schema([("s", pa.string())]))
    sink.write(pa.record_batch([pa.array([long_value])], names=["s"]))
    sink.finish()
    assert long_value in out.getvalue()
    assert "\x1b[" not in out.getvalue()


def test_values_are_formatted_for_reading() -> None:
    assert format_value(None) == "NULL"
    assert format_value(True) == "true"
    assert format_value(b"\x00\xff") == "0x00ff"
    assert format_value(decimal.Decimal("1E+2")) == "100"
    assert format_value(0.1) == "0.1"
    assert format_value(datetime.date(2024, 2, 29)) == "2024-02-29"
    ts = datetime.datetime(2024, 3, 10, 1, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=-5)))
    assert format_value(ts) == "2024-03-10 01:30:00-05:00"
    assert format_value([1, None, 3]) == "[1, null, 3]"
    assert format_value([("k", 1), ("n", None)]) == '{"k": 1, "n": null}'
    assert format_value({"a": 1, "b": "x", "c": [{"d": 2}]}) == '{a: 1, b: "x", c: [{d: 2}]}'
