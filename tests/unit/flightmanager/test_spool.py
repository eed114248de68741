"""ResultSpool: commits, attempts, spilling, budgets, and readers that wait for data."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import grpc
import pyarrow as pa
import pytest

from flightmanager.claims import piece_key, piece_of
from flightmanager.budget import ByteBudget
from flightmanager.errors import (
    BudgetExceeded,
    ClientGone,
    FlightManagerError,
    IncompleteResult,
    QueryCancelled,
    QueryFailed,
    ResultNotFound,
)
from flightmanager.flight.wire import EncodedBatch
from flightmanager.spool import Hangup, ResultSpool

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])
BIG = 1 << 30
JOIN = 10  # seconds a reader thread may take to react; never reached when the code works
STILL_BLOCKED = 0.2  # how long a reader that must stay blocked is given to (wrongly) finish


def whole(manifest: dict[int, int]) -> dict[int, int]:
    """A manifest of whole partitions ({partition: rows}) by piece key."""
    return {piece_key(partition): rows for partition, rows in manifest.items()}


def record_batch(start: int, rows: int) -> pa.RecordBatch:
    ids = list(range(start, start + rows))
    return pa.record_batch(
        [pa.array(ids, pa.int64()), pa.array([None if i % 5 == 0 else f"row-{i:06d}" for i in ids])],
        schema=SCHEMA,
    )


def encoded(start: int, rows: int) -> EncodedBatch:
    return EncodedBatch.from_record_batch(record_batch(start, rows))


def ids_of(batches: list[EncodedBatch]) -> list[int]:
    return [i for b in batches for i in b.to_record_batch(SCHEMA).column("id").to_pylist()]


def make_spool(
    tmp_path: Path,
    *,
    memory: int = BIG,
    disk: int = BIG,
    ordered: bool = False,
    claim: Callable[[int, int, int, str, int, bool], bool] | None = None,
) -> ResultSpool:
    return ResultSpool(
        "q" * 32,
        SCHEMA,
        memory=ByteBudget("memory", memory),
        disk=ByteBudget("disk", disk),
        spill_dir=tmp_path / "spill",
        claim=claim or (lambda key, attempt, rows, push, first, last: True),
        ordered=ordered,
    )


def spill_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "spill"
    return sorted(root.rglob("*.arrows")) if root.exists() else []


def write(spool: ResultSpool, partition: int, attempt: int, batches: list[EncodedBatch], commit: bool = True):  # type: ignore[no-untyped-def]
    writer = spool.begin(partition, attempt)
    for batch in batches:
        writer.append(batch)
    if commit:
        return writer.commit()
    return writer


class Reader(threading.Thread):
    """Reads a spool to its end in a thread, recording batches and the error."""

    def __init__(self, spool: ResultSpool) -> None:
        super().__init__(daemon=True)
        self.spool = spool
        self.batches: list[EncodedBatch] = []
        self.error: BaseException | None = None
        self._cond = threading.Condition()

    def run(self) -> None:
        try:
            for batch in self.spool.batches():
                with self._cond:
                    self.batches.append(batch)
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - recorded for the test
            self.error = exc

    def wait_for_batches(self, count: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.batches) >= count, timeout=JOIN)

    def assert_blocked(self) -> None:
        self.join(STILL_BLOCKED)
        assert self.is_alive(), f"reader ended early (error={self.error!r})"

    def finish(self) -> None:
        self.join(JOIN)
        assert not self.is_alive(), "reader still blocked"


# -- writing and reading back ---------------------------------------------------


def test_committed_partition_reads_back_equal(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    sent = [encoded(0, 3), encoded(3, 0), encoded(3, 100)]

    assert write(spool, 0, 0, sent) is True
    spool.finish(whole({0: 103}))
    got = list(spool.batches())

    assert [(b.header, b.body, b.rows) for b in got] == [(b.header, b.body, b.rows) for b in sent]
    assert ids_of(got) == list(range(103))
    assert spool.rows_held == 103
    assert spool.rows_served == 103
    assert spool.bytes_served == sum(b.nbytes for b in sent)
    assert spool.finished
    assert spill_files(tmp_path) == []


def test_writer_counts_rows(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    writer = write(spool, 0, 0, [encoded(0, 4), encoded(4, 6)], commit=False)
    assert writer.rows == 10
    writer.abort()


def test_memory_is_accounted_while_held_and_released_on_close(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    sent = [encoded(0, 50), encoded(50, 50)]
    write(spool, 0, 0, sent)
    assert spool.memory.used == sum(b.nbytes for b in sent)

    spool.close()

    assert spool.memory.used == 0
    assert spool.rows_held == 0


def test_empty_partition_commits(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    assert write(spool, 0, 0, []) is True
    write(spool, 1, 0, [encoded(0, 2)])
    spool.finish(whole({0: 0, 1: 2}))
    assert ids_of(list(spool.batches())) == [0, 1]


def test_uncommitted_attempt_is_not_visible_after_finish(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    pending = write(spool, 0, 0, [encoded(1000, 5)], commit=False)
    write(spool, 1, 0, [encoded(0, 3)])
    spool.finish(whole({1: 3}))

    assert ids_of(list(spool.batches())) == [0, 1, 2]
    assert spool.rows_held == 3
    pending.abort()


def test_uncommitted_attempt_is_never_visible_to_a_waiting_reader(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    reader = Reader(spool)
    reader.start()
    writer = write(spool, 0, 0, [encoded(0, 4), encoded(4, 4)], commit=False)

    reader.assert_blocked()
    assert reader.batches == []

    assert writer.commit() is True
    assert reader.wait_for_batches(2)
    spool.finish(whole({0: 8}))
    reader.finish()
    assert reader.error is None
    assert ids_of(reader.batches) == list(range(8))


def test_aborted_attempt_is_not_visible_and_frees_memory(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    writer = write(spool, 0, 0, [encoded(500, 10)], commit=False)
    assert spool.memory.used > 0

    writer.abort()
    writer.abort()  # a second abort changes nothing

    assert spool.memory.used == 0
    write(spool, 0, 1, [encoded(0, 2)])
    spool.finish(whole({0: 2}))
    assert ids_of(list(spool.batches())) == [0, 1]


def test_commit_twice_is_refused(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    writer = write(spool, 0, 0, [encoded(0, 1)], commit=False)
    assert writer.commit() is True
    with pytest.raises(RuntimeError):
        writer.commit()
    writer.abort()  # no effect once committed
    spool.finish(whole({0: 1}))
    assert ids_of(list(spool.batches())) == [0]


# -- attempts -------------------------------------------------------------------


def test_first_committed_attempt_wins(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    first = write(spool, 0, 0, [encoded(0, 5)], commit=False)
    second = write(spool, 0, 1, [encoded(100, 7), encoded(107, 7)], commit=False)
    winner_bytes = sum(b.nbytes for b in [encoded(100, 7), encoded(107, 7)])

    assert second.commit() is True
    assert first.commit() is False

    assert spool.memory.used == winner_bytes
    spool.finish(whole({0: 14}))
    assert ids_of(list(spool.batches())) == list(range(100, 114))


def test_losing_attempt_releases_spilled_bytes_and_files(tmp_path: Path) -> None:
    spool = make_spool(tmp_path, memory=0)
    assert write(spool, 3, 0, [encoded(0, 10)]) is True
    disk_after_winner = spool.disk.used
    loser = write(spool, 3, 1, [encoded(0, 10), encoded(10, 10)], commit=False)
    assert len(spill_files(tmp_path)) == 2

    assert loser.commit() is False

    assert spool.disk.used == disk_after_winner
    (name,) = [p.name for p in spill_files(tmp_path)]
    assert name.startswith("p000003-0000-a0-") and name.endswith(".arrows")
    spool.finish(whole({3: 10}))
    assert ids_of(list(spool.batches())) == list(range(10))


def test_claim_decides_whether_an_attempt_may_commit(tmp_path: Path) -> None:
    asked: list[tuple[int, int]] = []

    def claim(key: int, attempt: int, rows: int, push: str, first: int, last: bool) -> bool:
        asked.append((piece_of(key)[0], attempt))
        return attempt == 2  # another node took every other attempt

    spool = make_spool(tmp_path, claim=claim)
    assert write(spool, 7, 1, [encoded(0, 3)]) is False
    assert spool.memory.used == 0
    assert write(spool, 7, 2, [encoded(3, 3)]) is True
    assert asked == [(7, 1), (7, 2)]
    spool.finish(whole({7: 3}))
    assert ids_of(list(spool.batches())) == [3, 4, 5]


def test_a_reader_fails_at_once_when_its_manifest_names_a_partition_not_held_here(tmp_path: Path) -> None:
    """Every push has ended when the manifest arrives: a partition it names that is not
    here will never come, so waiting for it would hang the reader until expiry."""
    spool = make_spool(tmp_path)
    write(spool, 0, 0, [encoded(0, 3)])
    reader = Reader(spool)
    reader.start()
    spool.finish(whole({0: 3, 5: 4}))
    reader.join(JOIN)
    assert not reader.is_alive()
    assert isinstance(reader.error, IncompleteResult)
    assert "partition 5 were" in reader.error.message and "not held here" in reader.error.message


def test_readers_are_not_held_up_while_a_claim_is_decided(tmp_path: Path) -> None:
    """A claim is a round trip to ZooKeeper: readers of partitions already committed
    keep streaming while it is pending."""
    deciding, decide = threading.Event(), threading.Event()

    def slow_claim(key: int, attempt: int, rows: int, push: str, first: int, last: bool) -> bool:
        if key == piece_key(1):
            deciding.set()
            assert decide.wait(JOIN)
        return True

    spool = make_spool(tmp_path, claim=slow_claim)
    write(spool, 0, 0, [encoded(0, 3)])
    committer = threading.Thread(target=write, args=(spool, 1, 0, [encoded(3, 2)]))
    committer.start()
    assert deciding.wait(JOIN)
    batches = spool.batches()
    first = next(batches)  # served while partition 1's claim is pending
    assert ids_of([first]) == [0, 1, 2]
    decide.set()
    committer.join(JOIN)
    spool.finish(whole({0: 3, 1: 2}))
    assert ids_of(list(batches)) == [3, 4]


def test_repeated_attempt_number_does_not_destroy_the_committed_spill(tmp_path: Path) -> None:
    spool = make_spool(tmp_path, memory=0)
    assert write(spool, 0, 0, [encoded(0, 4)]) is True
    assert write(spool, 0, 0, [encoded(100, 2)]) is False
    spool.finish(whole({0: 4}))
    assert ids_of(list(spool.batches())) == [0, 1, 2, 3]


# -- spilling and budgets ----------------------------------------------------


class _WatchedBudget(ByteBudget):
    """A budget that records its use after every change."""

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(name, limit)
        self.seen: list[int] = []

    def try_take(self, nbytes: int) -> bool:
        taken = super().try_take(nbytes)
        self.seen.append(self.used)
        return taken


def test_spills_once_memory_is_full_and_reads_back_identical(tmp_path: Path) -> None:
    sent = [encoded(i * 20, 20) for i in range(10)]
    limit = sent[0].nbytes * 2 + sent[0].nbytes // 2  # room for two batches
    memory = _WatchedBudget("memory", limit)
    spool = ResultSpool(
        "q", SCHEMA, memory=memory, disk=ByteBudget("disk", BIG), spill_dir=tmp_path / "spill",
        claim=lambda key, a, rows, push, first, last: True,
    )

    writer = spool.begin(0, 0)
    for batch in sent:
        writer.append(batch)
        assert memory.used <= limit
    assert writer.commit() is True

    assert max(memory.seen) <= limit
    assert memory.peak <= limit
    assert memory.used == sent[0].nbytes + sent[1].nbytes
    assert spool.disk.used == sum(b.nbytes for b in sent[2:])
    assert len(spill_files(tmp_path)) == 1

    spool.finish(whole({0: 200}))
    got = list(spool.batches())
    assert [(b.header, b.body, b.rows) for b in got] == [(b.header, b.body, b.rows) for b in sent]
    assert ids_of(got) == list(range(200))


def test_once_spilling_an_attempt_keeps_spilling_to_preserve_order(tmp_path: Path) -> None:
    big, small = encoded(0, 200), encoded(200, 1)
    spool = make_spool(tmp_path, memory=big.nbytes - 1)
    write(spool, 0, 0, [big, small])
    # the small batch would fit in memory, but it must come after the big one
    assert spool.memory.used == 0
    spool.finish(whole({0: 201}))
    assert ids_of(list(spool.batches())) == list(range(201))


def test_partitions_share_the_memory_budget(tmp_path: Path) -> None:
    batch = encoded(0, 30)
    spool = make_spool(tmp_path, memory=batch.nbytes * 3)
    for partition in range(5):
        write(spool, partition, 0, [encoded(partition * 30, 30)])
        assert spool.memory.used <= spool.memory.limit
    assert spool.memory.used == batch.nbytes * 3
    assert len(spill_files(tmp_path)) == 2
    spool.finish(whole({p: 30 for p in range(5)}))
    assert sorted(ids_of(list(spool.batches()))) == list(range(150))


def test_disk_budget_exceeded_raises_resource_exhausted(tmp_path: Path) -> None:
    batch = encoded(0, 50)
    spool = make_spool(tmp_path, memory=0, disk=batch.nbytes * 2 + 1)
    writer = spool.begin(0, 0)
    writer.append(encoded(0, 50))
    writer.append(encoded(50, 50))

    with pytest.raises(BudgetExceeded) as info:
        writer.append(encoded(100, 50))

    assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "disk" in str(info.value)
    assert spool.disk.used <= spool.disk.limit
    writer.abort()
    assert spool.disk.used == 0
    assert spill_files(tmp_path) == []


def test_aborted_spilled_attempt_releases_memory_and_deletes_its_file(tmp_path: Path) -> None:
    first = encoded(0, 10)
    spool = make_spool(tmp_path, memory=first.nbytes)
    writer = write(spool, 0, 0, [first, encoded(10, 10), encoded(20, 10)], commit=False)
    assert spool.memory.used == first.nbytes
    assert spool.disk.used > 0
    assert len(spill_files(tmp_path)) == 1

    writer.abort()

    assert spool.memory.used == 0
    assert spool.disk.used == 0
    assert spill_files(tmp_path) == []


def test_close_deletes_spill_files_and_releases_budgets(tmp_path: Path) -> None:
    spool = make_spool(tmp_path, memory=encoded(0, 10).nbytes)
    write(spool, 0, 0, [encoded(0, 10), encoded(10, 10)])
    write(spool, 1, 0, [encoded(20, 10)])
    assert spill_files(tmp_path)

    spool.close()

    assert spool.memory.used == 0
    assert spool.disk.used == 0
    assert spill_files(tmp_path) == []


def test_writing_after_close_or_fail_is_refused(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    writer = spool.begin(0, 0)
    writer.append(encoded(0, 1))
    spool.close("expired")

    with pytest.raises(ResultNotFound, match="expired"):
        writer.append(encoded(1, 1))
    assert writer.commit() is False
    assert spool.memory.used == 0
    with pytest.raises(ResultNotFound):
        spool.begin(1, 0)

    failed = make_spool(tmp_path)
    error = QueryFailed("executor lost")
    pending = failed.begin(0, 0)
    pending.append(encoded(0, 1))
    failed.fail(error)
    assert pending.commit() is False
    assert failed.memory.used == 0
    with pytest.raises(QueryFailed):
        failed.begin(1, 0)


# -- readers that wait ------------------------------------------------------------


def test_waiting_reader_is_woken_by_commit(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    reader = Reader(spool)
    reader.start()
    reader.assert_blocked()

    write(spool, 0, 0, [encoded(0, 2)])
    assert reader.wait_for_batches(1)
    assert ids_of(reader.batches) == [0, 1]
    reader.assert_blocked()  # no manifest yet: more may come

    write(spool, 1, 0, [encoded(2, 2)])
    assert reader.wait_for_batches(2)
    spool.finish(whole({0: 2, 1: 2}))
    reader.finish()
    assert reader.error is None
    assert ids_of(reader.batches) == [0, 1, 2, 3]


def test_waiting_reader_ends_at_finish_with_exactly_the_manifest(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    write(spool, 0, 0, [encoded(0, 3)])
    reader = Reader(spool)
    reader.start()
    assert reader.wait_for_batches(1)
    reader.assert_blocked()

    spool.finish(whole({0: 3}))

    reader.finish()
    assert reader.error is None
    assert ids_of(reader.batches) == [0, 1, 2]


def test_reader_waits_for_a_manifest_partition_whose_claim_is_being_decided(tmp_path: Path) -> None:
    """A push that won its claim may still be committing when the manifest arrives
    (the job ended meanwhile): the reader waits for it rather than failing."""
    deciding, decide = threading.Event(), threading.Event()

    def slow_claim(key: int, attempt: int, rows: int, push: str, first: int, last: bool) -> bool:
        if key == piece_key(1):
            deciding.set()
            assert decide.wait(JOIN)
        return True

    spool = make_spool(tmp_path, claim=slow_claim)
    write(spool, 0, 0, [encoded(0, 1)])
    committer = threading.Thread(target=write, args=(spool, 1, 0, [encoded(1, 1)]))
    committer.start()
    assert deciding.wait(JOIN)
    spool.finish(whole({0: 1, 1: 1}))
    reader = Reader(spool)
    reader.start()
    assert reader.wait_for_batches(1)
    reader.assert_blocked()

    decide.set()
    committer.join(JOIN)

    reader.finish()
    assert reader.error is None
    assert ids_of(reader.batches) == [0, 1]


def test_waiting_reader_is_woken_by_fail(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    write(spool, 0, 0, [encoded(0, 1)])
    reader = Reader(spool)
    reader.start()
    assert reader.wait_for_batches(1)
    error = QueryFailed("stage 3 failed: division by zero")

    spool.fail(error)

    reader.finish()
    assert reader.error is error
    assert spool.error is error


def test_first_failure_is_kept(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    first = QueryCancelled("cancelled by the client")
    spool.fail(first)
    spool.fail(QueryFailed("later"))
    assert spool.error is first
    with pytest.raises(QueryCancelled):
        list(spool.batches())


def test_waiting_reader_is_woken_by_close(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    reader = Reader(spool)
    reader.start()
    reader.assert_blocked()

    spool.close("cancelled")

    reader.finish()
    assert isinstance(reader.error, ResultNotFound)
    assert reader.error.code is grpc.StatusCode.NOT_FOUND
    assert "cancelled" in str(reader.error)


def test_reading_a_closed_spool_raises_not_found(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    write(spool, 0, 0, [encoded(0, 1)])
    spool.finish(whole({0: 1}))
    spool.close()
    with pytest.raises(ResultNotFound):
        list(spool.batches())


def test_close_while_reading_from_memory_raises_not_found(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    write(spool, 0, 0, [encoded(0, 1), encoded(1, 1)])
    spool.finish(whole({0: 2}))
    stream = spool.batches()
    next(stream)

    spool.close()

    with pytest.raises(ResultNotFound):
        next(stream)


def test_close_while_reading_a_partially_spilled_partition_raises_not_found(tmp_path: Path) -> None:
    first = encoded(0, 1)
    spool = make_spool(tmp_path, memory=first.nbytes)
    write(spool, 0, 0, [first, encoded(1, 1)])
    spool.finish(whole({0: 2}))
    stream = spool.batches()
    next(stream)

    spool.close()

    with pytest.raises(ResultNotFound):
        next(stream)


# -- order ---------------------------------------------------------------------


def test_unordered_spool_serves_partitions_in_commit_order(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    write(spool, 2, 0, [encoded(20, 1)])
    write(spool, 0, 0, [encoded(0, 1)])
    write(spool, 1, 0, [encoded(10, 1)])
    spool.finish(whole({0: 1, 1: 1, 2: 1}))
    assert ids_of(list(spool.batches())) == [20, 0, 10]


def test_ordered_spool_serves_partitions_by_index(tmp_path: Path) -> None:
    spool = make_spool(tmp_path, ordered=True)
    write(spool, 2, 0, [encoded(20, 2)])
    write(spool, 0, 0, [encoded(0, 2)])
    write(spool, 1, 0, [encoded(10, 2)])
    spool.finish(whole({0: 2, 1: 2, 2: 2}))
    assert ids_of(list(spool.batches())) == [0, 1, 10, 11, 20, 21]


def test_ordered_reader_waits_for_the_next_index(tmp_path: Path) -> None:
    spool = make_spool(tmp_path, ordered=True)
    reader = Reader(spool)
    reader.start()

    write(spool, 2, 0, [encoded(20, 1)])
    write(spool, 1, 0, [encoded(10, 1)])
    reader.assert_blocked()
    assert reader.batches == []

    write(spool, 0, 0, [encoded(0, 1)])
    assert reader.wait_for_batches(3)
    spool.finish(whole({0: 1, 1: 1, 2: 1}))
    reader.finish()
    assert reader.error is None
    assert ids_of(reader.batches) == [0, 10, 20]


def test_ordered_spool_skips_partitions_held_elsewhere(tmp_path: Path) -> None:
    spool = make_spool(tmp_path, ordered=True)
    write(spool, 3, 0, [encoded(30, 1)])
    write(spool, 1, 0, [encoded(10, 1)])
    spool.finish(whole({1: 1, 3: 1}))
    assert ids_of(list(spool.batches())) == [10, 30]


# -- re-reading and the manifest check -------------------------------------------


def test_finished_spool_can_be_read_twice(tmp_path: Path) -> None:
    spool = make_spool(tmp_path, memory=encoded(0, 10).nbytes * 2)
    for partition in range(3):
        write(spool, partition, 0, [encoded(partition * 30 + k * 10, 10) for k in range(3)])
    spool.finish(whole({0: 30, 1: 30, 2: 30}))

    first = ids_of(list(spool.batches()))
    second = ids_of(list(spool.batches()))

    assert sorted(first) == list(range(90))
    assert second == first
    assert spool.rows_served == 180


def test_manifest_row_count_mismatch_raises(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    write(spool, 0, 0, [encoded(0, 3)])
    spool.finish(whole({0: 4}))

    with pytest.raises(FlightManagerError, match="partition 0 should hold 4 rows, holds 3"):
        list(spool.batches())


def test_manifest_with_unknown_row_count_is_not_checked(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    write(spool, 0, 0, [encoded(0, 3)])
    spool.finish(whole({0: -1}))
    assert ids_of(list(spool.batches())) == [0, 1, 2]


def test_empty_manifest_ends_reading_at_once(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    spool.finish(whole({}))
    assert list(spool.batches()) == []


# -- the budget itself -----------------------------------------------------------


def test_byte_budget_take_and_give_back() -> None:
    budget = ByteBudget("memory", 100)
    assert budget.try_take(60)
    assert not budget.try_take(41)
    assert budget.used == 60
    budget.take(40)
    with pytest.raises(BudgetExceeded, match="memory budget of 100 bytes exceeded"):
        budget.take(1)
    budget.give_back(70)
    assert budget.used == 30
    assert budget.peak == 100
    with pytest.raises(ValueError):
        ByteBudget("disk", -1)


def test_a_reader_whose_client_went_away_ends_at_once(tmp_path: Path) -> None:
    """A waiting reader holds a server thread: when its client goes, it ends without
    waiting for the query, and is not counted as delivered (it raises)."""
    spool = make_spool(tmp_path)
    write(spool, 0, 0, [encoded(0, 2)])
    hangup = Hangup()
    batches = spool.batches(hangup)
    assert ids_of([next(batches)]) == [0, 1]
    ended: list[BaseException] = []

    def read_on() -> None:
        try:
            next(batches)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test
            ended.append(exc)

    reader = threading.Thread(target=read_on)
    reader.start()
    reader.join(STILL_BLOCKED)
    assert reader.is_alive()  # waiting for partitions still to come
    hangup()
    reader.join(JOIN)
    assert not reader.is_alive()
    assert isinstance(ended[0], ClientGone)
