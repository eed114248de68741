"""The manager as an adapter of the lifecycle, on a one-node cluster kept in memory:
results the driver holds, reading, cancel, renewal, expiry, a lost node, draining.

Jobs need Spark and ZooKeeper and are tested against real ones (tests/integration);
what is here is the part that needs neither."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pytest

from flightmanager.errors import NodeLost, NotOwner, ResultNotFound
from flightmanager.lifecycle import Life
from flightmanager.manager import SparkFlightManager
from flightmanager.query import QueryState
from flightmanager.records import Node, QueryRecord, SpoolSettings
from flightmanager.registry import MemoryRegistry, QueryInfo

NODE = Node("a:1", "grpc://a:1", "grpc://a:2", "a")
OTHER = Node("b:1", "grpc://b:1", "grpc://b:2", "b")
SCHEMA = pa.schema([("x", pa.int64())])


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[SparkFlightManager]:
    made = SparkFlightManager(None, NODE, b"k" * 32, SpoolSettings(spill_dir=tmp_path / "spill", result_ttl=60.0))
    yield made
    made.stop()


def _rows(manager: SparkFlightManager, query_id: str, user: str = "alice") -> list[int]:
    _, batches = manager.stream(query_id, user)
    return [x for batch in batches for x in batch.to_record_batch(SCHEMA).column(0).to_pylist()]


def _publish(manager: SparkFlightManager, values: list[int]) -> str:
    batch = pa.record_batch([pa.array(values, pa.int64())], schema=SCHEMA)
    return manager.publish(SCHEMA, [batch], owner="alice", sql="SHOW x").query_id


def test_a_driver_result_is_served_by_this_node_alone_and_read_again(manager: SparkFlightManager) -> None:
    query_id = _publish(manager, [1, 2, 3])
    assert manager.record(query_id).state is QueryState.FINISHED
    assert _rows(manager, query_id) == [1, 2, 3]
    assert _rows(manager, query_id) == [1, 2, 3]  # re-readable until it expires
    assert manager.registry.get(query_id) is None  # the cluster's registry never heard of it
    with pytest.raises(NotOwner):
        manager.stream(query_id, "mallory")


def test_closing_frees_the_result_and_then_it_is_not_found(manager: SparkFlightManager) -> None:
    query_id = _publish(manager, [1])
    manager.close(query_id, "alice")
    assert manager.record(query_id).state is QueryState.EXPIRED
    assert manager.record(query_id).outcome is QueryState.FINISHED
    with pytest.raises(ResultNotFound):
        manager.stream(query_id, "alice")


def test_renewal_moves_the_expiry_and_a_finished_query_cannot_be_cancelled(manager: SparkFlightManager) -> None:
    query_id = _publish(manager, [1])
    before = manager.record(query_id).expires_at
    assert manager.renew(query_id, "alice") >= before
    assert manager.cancel(query_id, "alice") is QueryState.FINISHED


def test_a_result_expires_when_its_time_comes(tmp_path: Path) -> None:
    short = SparkFlightManager(None, NODE, b"k" * 32, SpoolSettings(spill_dir=tmp_path / "s", result_ttl=0.2))
    try:
        query_id = _publish(short, [1])
        with short._lock:
            assert short._lock.wait_for(lambda: short.record(query_id).state is QueryState.EXPIRED, timeout=10)
        with pytest.raises(ResultNotFound):
            short.stream(query_id, "alice")
    finally:
        short.stop()


def _mirror(manager: SparkFlightManager, coordinator: str) -> QueryRecord:
    """A query another node coordinates, with a part here, as a reader's first call finds it."""
    registry = manager.registry
    assert isinstance(registry, MemoryRegistry)
    registry.create(
        QueryInfo("q" * 32, "alice", coordinator, "SELECT 1", QueryInfo.encode_schema(SCHEMA), False, 1.0,
                  4_000_000_000.0, nodes=[NODE.node_id, OTHER.node_id])
    )
    return manager.record("q" * 32, "alice")


def test_a_reader_of_a_query_whose_coordinator_is_lost_gets_an_error_naming_it(manager: SparkFlightManager) -> None:
    record = _mirror(manager, OTHER.node_id)
    assert record.state is QueryState.RUNNING
    _, batches = manager.stream(record.query_id, "alice")
    failed: list[BaseException] = []

    def read() -> None:
        try:
            list(batches)
        except NodeLost as exc:
            failed.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    manager._left(OTHER.node_id)
    reader.join(10)
    assert not reader.is_alive(), "the reader must end, not wait for a part that will not come"
    assert failed and "coordinator b:1 was lost" in str(failed[0])
    assert manager.record(record.query_id).state is QueryState.FAILED


def test_the_registry_finishing_a_query_ends_this_nodes_stream_with_its_manifest(manager: SparkFlightManager) -> None:
    record = _mirror(manager, OTHER.node_id)
    spool = record.spool
    assert spool is not None
    assert spool.begin(0, 0).commit()  # an empty partition, pushed here
    manager.registry.write_manifest(record.query_id, NODE.node_id, {0: 0})
    manager.registry.update(record.query_id, lambda info: _finished(info))
    with manager._lock:
        assert manager._lock.wait_for(lambda: record.state is QueryState.FINISHED, timeout=10)
    assert _rows(manager, record.query_id) == []


def _finished(info: QueryInfo) -> QueryInfo:
    from dataclasses import replace

    return replace(info, state=QueryState.FINISHED.value, finished=2.0)


def test_a_drain_with_nothing_unread_ends_at_once(manager: SparkFlightManager) -> None:
    query_id = _publish(manager, [1, 2])
    assert _rows(manager, query_id) == [1, 2]
    assert manager.drain(timeout=30) is True
    assert manager.status().node.draining


def test_a_drain_that_runs_out_fails_what_was_not_read(manager: SparkFlightManager) -> None:
    query_id = _publish(manager, [1])
    assert manager.drain(timeout=0.1) is False
    record = manager.record(query_id)
    assert record.state is QueryState.FAILED
    assert record.error is not None and "was stopped before its part was read" in record.error.message


def test_the_record_of_a_query_follows_its_life() -> None:
    life = Life("q", "a", "a", frozenset({"a"}), 60.0, 1.0, 61.0)
    record = QueryRecord(life, "alice", "SELECT 1", SCHEMA, False, MemoryRegistry())
    assert (record.query_id, record.state, record.created, record.expires_at) == ("q", QueryState.PENDING, 1.0, 61.0)


def test_a_driver_result_nobody_began_to_read_does_not_hold_a_drain(
    manager: SparkFlightManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output of a SET or a DDL statement that the client did not fetch: the drain
    waits for its first reader only a short grace."""
    import flightmanager.records as records

    monkeypatch.setattr(records, "DRIVER_RESULT_GRACE", 0.3)
    unread = _publish(manager, [1])
    started = time.monotonic()
    assert manager.drain(timeout=30) is True
    assert time.monotonic() - started < 10
    assert manager.record(unread).state is QueryState.FINISHED  # not failed: nobody was reading it
