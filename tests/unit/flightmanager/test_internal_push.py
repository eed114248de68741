"""The internal Flight server: executors' pushes, as pyarrow Flight clients send them."""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import Iterator

import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flightmanager.claims import piece_key, piece_of
from flightmanager.budget import ByteBudget
from flightmanager.errors import BudgetExceeded, QueryFailed
from flightmanager.flight import Flight_pb2 as pb
from flightmanager.flight.service import SERVICE_NAME, start_server
from flightmanager.flight.wire import EncodedBatch, parse_flight_data, schema_flight_data
from flightmanager.internal import InternalFlightService
from flightmanager.keys import ClusterKeys, push_mac
from flightmanager.push import (
    PushHeader,
    PushTarget,
    _first_reachable,
    _push_messages,
    choose_target,
    completion_marker,
    push_order,
)
from flightmanager.zk.embedded import free_port
from flightmanager.spool import ResultSpool

PUSH_KEY = ClusterKeys.derive(b"cluster-secret-Zq8-0123456789abcdef").pushes
SCHEMA = pa.schema([("id", pa.int64()), ("label", pa.string()), ("score", pa.float64())])
BIG = 1 << 30
TIMEOUT = 10


def whole(manifest: dict[int, int]) -> dict[int, int]:
    """A manifest of whole partitions ({partition: rows}) by piece key."""
    return {piece_key(partition): rows for partition, rows in manifest.items()}


def batch(start: int, rows: int) -> pa.RecordBatch:
    ids = list(range(start, start + rows))
    return pa.record_batch(
        [
            pa.array(ids, pa.int64()),
            pa.array([None if i % 7 == 0 else f"label-{i:05d}" for i in ids]),
            pa.array([i / 4 for i in ids], pa.float64()),
        ],
        schema=SCHEMA,
    )


def ids_of(spool: ResultSpool) -> list[int]:
    return [
        i
        for b in spool.batches()
        for i in b.to_record_batch(spool.schema).column("id").to_pylist()
    ]


class _Budget(ByteBudget):
    """A budget that signals when bytes are taken and given back."""

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(name, limit)
        self.taken = threading.Event()
        self.given_back = threading.Event()

    def try_take(self, nbytes: int) -> bool:
        ok = super().try_take(nbytes)
        if ok and nbytes:
            self.taken.set()
        return ok

    def give_back(self, nbytes: int) -> None:
        super().give_back(nbytes)
        if nbytes:
            self.given_back.set()


class Node:
    """An internal server with its spools, as one node holds them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.spools: dict[str, ResultSpool] = {}
        self.exhausted: list[str] = []
        self.exhausted_event = threading.Event()
        self.pushed: list[tuple[str, int, str]] = []
        self.service = InternalFlightService(
            PUSH_KEY, self.spools.get, self._on_exhausted, lambda *push: self.pushed.append(push)
        )
        self.server, self.port = start_server(self.service, "127.0.0.1", 0, max_workers=8)
        self.client = flight.connect(f"grpc://127.0.0.1:{self.port}")

    def _on_exhausted(self, query_id: str) -> None:
        self.exhausted.append(query_id)
        self.exhausted_event.set()

    def spool(self, query_id: str, *, memory: int = BIG, disk: int = BIG, schema: pa.Schema = SCHEMA) -> ResultSpool:
        spool = ResultSpool(
            query_id,
            schema,
            memory=_Budget("memory", memory),
            disk=_Budget("disk", disk),
            spill_dir=self.tmp_path / "spill" / query_id,
            claim=lambda key, attempt, rows, push, first, last: True,
        )
        self.spools[query_id] = spool
        return spool

    def push(
        self,
        header: PushHeader | bytes,
        batches: list[pa.RecordBatch],
        schema: pa.Schema = SCHEMA,
        *,
        with_rows: bool = True,
        complete: bool = True,
    ) -> bytes | None:
        """Push as flightmanager.push does: row count as little-endian int64 metadata."""
        command = header.encode() if isinstance(header, PushHeader) else header
        descriptor = flight.FlightDescriptor.for_command(command)
        writer, reader = self.client.do_put(descriptor, schema)
        try:
            for b in batches:
                if with_rows:
                    writer.write_with_metadata(b, pa.py_buffer(struct.pack("<q", b.num_rows)))
                else:
                    writer.write_batch(b)
            if complete:
                writer.write_metadata(pa.py_buffer(completion_marker(sum(b.num_rows for b in batches))))
            writer.done_writing()
            ack = reader.read()
        finally:
            writer.close()
        return None if ack is None else ack.to_pybytes()

    def close(self) -> None:
        self.client.close()
        self.server.stop(None)
        for spool in self.spools.values():
            spool.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    try:
        yield n
    finally:
        n.close()


def header(query_id: str = "a" * 32, partition: int = 0, attempt: int = 0, mac: str | None = None) -> PushHeader:
    return PushHeader(query_id, partition, attempt, push_mac(PUSH_KEY, query_id) if mac is None else mac)


# -- accepted pushes -----------------------------------------------------------


def test_push_commits_and_data_is_in_the_spool(node: Node) -> None:
    spool = node.spool("a" * 32)
    sent = [batch(0, 10), batch(10, 0), batch(10, 500)]

    ack = node.push(header(partition=4), sent)

    assert ack == b"committed"
    assert spool.rows_held == 510
    spool.finish(whole({4: 510}))
    got = [b.to_record_batch(SCHEMA) for b in spool.batches()]
    assert pa.Table.from_batches(got, schema=SCHEMA).equals(pa.Table.from_batches(sent))


def test_push_without_row_metadata_counts_rows_itself(node: Node) -> None:
    spool = node.spool("a" * 32)

    ack = node.push(header(), [batch(0, 3), batch(3, 4)], with_rows=False)

    assert ack == b"committed"
    assert spool.rows_held == 7
    spool.finish(whole({0: 7}))
    assert ids_of(spool) == list(range(7))


def test_empty_partition_push_with_empty_schema_commits(node: Node) -> None:
    spool = node.spool("a" * 32)

    ack = node.push(header(partition=2), [], pa.schema([]))

    assert ack == b"committed"
    spool.finish(whole({2: 0}))
    assert ids_of(spool) == []


def test_pushes_of_several_partitions_in_parallel(node: Node) -> None:
    spool = node.spool("a" * 32)
    acks: dict[int, bytes | None] = {}
    errors: list[BaseException] = []

    def push(partition: int) -> None:
        try:
            acks[partition] = node.push(
                header(partition=partition), [batch(partition * 100 + k * 25, 25) for k in range(4)]
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(p,)) for p in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive()

    assert errors == []
    assert acks == {p: b"committed" for p in range(6)}
    spool.finish(whole({p: 100 for p in range(6)}))
    assert sorted(ids_of(spool)) == list(range(600))


def test_second_attempt_of_a_partition_is_a_duplicate(node: Node) -> None:
    spool = node.spool("a" * 32)
    assert node.push(header(partition=1, attempt=0), [batch(0, 5)]) == b"committed"

    ack = node.push(header(partition=1, attempt=1), [batch(100, 8)])

    assert ack == b"duplicate"
    assert spool.rows_held == 5
    assert spool.memory.used == EncodedBatch.from_record_batch(batch(0, 5)).nbytes
    spool.finish(whole({1: 5}))
    assert ids_of(spool) == list(range(5))
    assert node.pushed == [("a" * 32, 5, "committed"), ("a" * 32, 8, "dropped")]  # what the node's metrics count


def test_push_spills_beyond_the_memory_budget(node: Node) -> None:
    one = EncodedBatch.from_record_batch(batch(0, 100)).nbytes
    spool = node.spool("a" * 32, memory=one)
    sent = [batch(k * 100, 100) for k in range(5)]

    assert node.push(header(), sent) == b"committed"

    assert spool.memory.used <= one
    assert spool.disk.used > 0
    spool.finish(whole({0: 500}))
    assert ids_of(spool) == list(range(500))


# -- refused pushes ---------------------------------------------------------------


def test_a_push_signed_with_another_key_is_permission_denied(node: Node) -> None:
    spool = node.spool("a" * 32)
    other_key = ClusterKeys.derive(b"another-cluster-secret-987654321").pushes

    with pytest.raises(flight.FlightUnauthorizedError, match="not signed for this query"):
        node.push(header(mac=push_mac(other_key, "a" * 32)), [batch(0, 3)])

    assert spool.rows_held == 0
    assert spool.memory.used == 0


def test_the_mac_of_another_query_opens_nothing(node: Node) -> None:
    spool = node.spool("a" * 32)
    node.spool("b" * 32)  # a query the executor may push to proves nothing for another
    with pytest.raises(flight.FlightUnauthorizedError, match="not signed for this query"):
        node.push(header(query_id="a" * 32, mac=push_mac(PUSH_KEY, "b" * 32)), [batch(0, 3)])
    assert spool.rows_held == 0


def test_the_old_header_carrying_a_secret_is_refused(node: Node) -> None:
    spool = node.spool("a" * 32)
    old = b'fm1:{"q": "' + b"a" * 32 + b'", "p": 0, "a": 0, "s": "cluster-secret-Zq8-0123456789abcdef"}'
    with pytest.raises(flight.FlightUnauthorizedError, match="version 1"):
        node.push(old, [batch(0, 1)])
    assert spool.rows_held == 0


MAC = push_mac(PUSH_KEY, "a" * 32)


@pytest.mark.parametrize("mac", ["", MAC[:-1], MAC + "0", MAC.upper(), PUSH_KEY.hex()])
def test_near_miss_macs_are_refused(node: Node, mac: str) -> None:
    node.spool("a" * 32)
    with pytest.raises(flight.FlightUnauthorizedError):
        node.push(header(mac=mac), [batch(0, 1)])


def test_unknown_query_is_not_found(node: Node) -> None:
    node.spool("a" * 32)

    with pytest.raises(KeyError) as info:  # pyarrow's error for gRPC NOT_FOUND
        node.push(header(query_id="b" * 32), [batch(0, 3)])

    assert "not found" in str(info.value)
    assert "b" * 32 in str(info.value)


@pytest.mark.parametrize(
    "command",
    [b"garbage", b"fm2:{not json", b'fm2:{"q": "x"}', b"fm3:" + header().encode()[4:], b""],
    ids=["not a header", "bad json", "missing fields", "unknown version", "empty"],
)
def test_garbage_descriptor_is_refused(node: Node, command: bytes) -> None:
    spool = node.spool("a" * 32)

    with pytest.raises(flight.FlightUnauthorizedError, match="malformed push header"):
        node.push(command, [batch(0, 3)])

    assert spool.rows_held == 0


def test_schema_mismatch_is_refused(node: Node) -> None:
    spool = node.spool("a" * 32)
    other = pa.schema([("id", pa.int32()), ("label", pa.string()), ("score", pa.float64())])
    wrong = pa.record_batch(
        [pa.array([1], pa.int32()), pa.array(["x"]), pa.array([1.0])], schema=other
    )

    with pytest.raises(flight.FlightUnauthorizedError, match="does not match"):
        node.push(header(), [wrong], other)

    assert spool.rows_held == 0
    assert spool.memory.used == 0


def test_push_to_a_failed_result_gets_the_failure(node: Node) -> None:
    spool = node.spool("a" * 32)
    spool.fail(QueryFailed("stage failed"))

    with pytest.raises(flight.FlightInternalError, match="stage failed"):
        node.push(header(), [batch(0, 1)])


def test_push_to_a_closed_result_is_not_found(node: Node) -> None:
    spool = node.spool("a" * 32)
    spool.close("expired")

    with pytest.raises(KeyError, match="expired"):
        node.push(header(), [batch(0, 1)])


def test_server_keeps_accepting_pushes_after_refusals(node: Node) -> None:
    spool = node.spool("a" * 32)
    with pytest.raises(flight.FlightUnauthorizedError):
        node.push(header(mac="wrong"), [batch(0, 1)])
    with pytest.raises(flight.FlightUnauthorizedError):
        node.push(b"garbage", [batch(0, 1)])

    assert node.push(header(), [batch(0, 2)]) == b"committed"
    spool.finish(whole({0: 2}))
    assert ids_of(spool) == [0, 1]


# -- the disk budget ------------------------------------------------------------


def test_push_beyond_the_disk_budget_fails_the_result(node: Node) -> None:
    one = EncodedBatch.from_record_batch(batch(0, 100)).nbytes
    spool = node.spool("a" * 32, memory=0, disk=one * 2)

    with pytest.raises(pa.ArrowInvalid, match="resource exhausted.*disk budget"):
        node.push(header(partition=3), [batch(k * 100, 100) for k in range(4)])

    assert node.exhausted_event.wait(TIMEOUT)
    assert node.exhausted == ["a" * 32]
    assert isinstance(spool.error, BudgetExceeded)
    assert spool.error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert spool.disk.used == 0
    assert spool.rows_held == 0
    assert list((node.tmp_path / "spill").rglob("*.arrows")) == []
    with pytest.raises(BudgetExceeded):
        list(spool.batches())


def test_after_exhaustion_further_pushes_get_the_budget_error(node: Node) -> None:
    one = EncodedBatch.from_record_batch(batch(0, 100)).nbytes
    node.spool("a" * 32, memory=0, disk=one)
    with pytest.raises(pa.ArrowInvalid):
        node.push(header(partition=0), [batch(0, 100), batch(100, 100)])

    with pytest.raises(pa.ArrowInvalid, match="resource exhausted"):
        node.push(header(partition=1), [batch(0, 1)])


# -- an executor that dies mid-push ------------------------------------------------


def _raw_flight_data(command: bytes, batches: list[pa.RecordBatch]) -> list[bytes]:
    schema_header = parse_flight_data(schema_flight_data(SCHEMA)).header
    first = pb.FlightData(
        flight_descriptor=pb.FlightDescriptor(type=pb.FlightDescriptor.CMD, cmd=command),
        data_header=bytes(schema_header),
    ).SerializeToString()
    rest = []
    for b in batches:
        enc = EncodedBatch.from_record_batch(b)
        rest.append(
            pb.FlightData(
                data_header=enc.header, data_body=enc.body, app_metadata=struct.pack("<q", b.num_rows)
            ).SerializeToString()
        )
    rest.append(pb.FlightData(app_metadata=completion_marker(sum(b.num_rows for b in batches))).SerializeToString())
    return [first, *rest]


def test_interrupted_push_never_commits_and_releases_its_memory(node: Node) -> None:
    spool = node.spool("a" * 32)
    memory = spool.memory
    assert isinstance(memory, _Budget)
    # no completion marker: the executor dies after a batch, before it could say it was done
    # (with the marker sent, a node may see the stream end cleanly and rightly commit)
    messages = _raw_flight_data(header().encode(), [batch(0, 50)])[:-1]

    class ExecutorDied(Exception):
        pass

    def requests() -> Iterator[bytes]:
        yield from messages
        # wait until the node stored the batch, then die mid-stream
        memory.taken.wait(TIMEOUT)
        raise ExecutorDied()

    with grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
        call = channel.stream_stream(f"/{SERVICE_NAME}/DoPut", lambda b: b, lambda b: b)
        with pytest.raises(grpc.RpcError):
            list(call(requests(), timeout=TIMEOUT))

    assert memory.taken.is_set()
    assert memory.given_back.wait(TIMEOUT)
    assert memory.used == 0
    assert spool.rows_held == 0
    spool.finish(whole({}))
    assert ids_of(spool) == []


def test_push_that_ends_without_its_completion_marker_is_dropped(node: Node) -> None:
    spool = node.spool("a" * 32)
    with pytest.raises(flight.FlightUnauthorizedError) as raised:
        node.push(header(), [batch(0, 10)], complete=False)
    assert "ended without completing" in str(raised.value)
    assert node.pushed == [("a" * 32, 10, "incomplete")]  # what the node's metrics count
    assert spool.memory.used == 0
    spool.finish(whole({}))
    assert ids_of(spool) == []


def test_raw_push_with_row_metadata_commits(node: Node) -> None:
    spool = node.spool("a" * 32)
    with grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
        call = channel.stream_stream(f"/{SERVICE_NAME}/DoPut", lambda b: b, lambda b: b)
        replies = list(call(iter(_raw_flight_data(header().encode(), [batch(0, 4)])), timeout=TIMEOUT))
    assert [pb.PutResult.FromString(r).app_metadata for r in replies] == [b"committed"]
    spool.finish(whole({0: 4}))
    assert ids_of(spool) == [0, 1, 2, 3]


# -- PushHeader and choose_target -------------------------------------------------


def test_push_header_round_trip() -> None:
    h = PushHeader("0123456789abcdef0123456789abcdef", 17, 3, "m4c:\"\\")
    assert h.encode().startswith(b"fm2:")
    assert PushHeader.decode(h.encode()) == h


def test_push_header_decode_refuses_other_data() -> None:
    with pytest.raises(ValueError):
        PushHeader.decode(b"xx1:{}")
    with pytest.raises(KeyError):
        PushHeader.decode(b'fm2:{"q": "x", "p": 1}')
    with pytest.raises(ValueError, match="types"):
        PushHeader.decode(b'fm2:{"q": "x", "p": -1, "a": 0, "m": "y"}')
    with pytest.raises(ValueError, match="version 1"):
        PushHeader.decode(b'fm1:{"q": "x", "p": 1, "a": 0, "s": "secret"}')


def test_what_an_executor_pushes_carries_no_key() -> None:
    """The header the real pusher code builds: the query's MAC, never a key or the secret."""
    secret = b"cluster-secret-Zq8-0123456789abcdef"
    keys = ClusterKeys.derive(secret)
    sent = b"".join(_push_messages(
        PushHeader("a" * 32, 0, 0, push_mac(keys.pushes, "a" * 32)), SCHEMA, iter(()), [0, 0]))
    for key in (secret, keys.pushes, keys.tokens, keys.tickets):
        assert key not in sent and key.hex().encode() not in sent
    assert push_mac(keys.pushes, "a" * 32).encode() in sent


def test_derived_keys_differ_per_use_and_per_secret() -> None:
    keys = ClusterKeys.derive(b"cluster-secret-Zq8-0123456789abcdef")
    assert len({keys.tokens, keys.pushes, keys.tickets}) == 3
    assert ClusterKeys.derive(b"cluster-secret-Zq8-0123456789abcdef") == keys
    assert ClusterKeys.derive(b"cluster-secret-Zq8-0123456789abcdeF").pushes != keys.pushes
    assert "redacted" in repr(keys) and keys.pushes.hex() not in repr(keys)


TARGETS = [
    PushTarget("n1", "grpc://h1:1", "h1"),
    PushTarget("n2", "grpc://h2:1", "h2"),
    PushTarget("n3", "grpc://h2:2", "h2"),
]


def test_choose_target_prefers_a_node_on_the_same_host() -> None:
    assert {choose_target(TARGETS, p, "h1").node_id for p in range(10)} == {"n1"}


def test_choose_target_spreads_over_local_nodes() -> None:
    chosen = [choose_target(TARGETS, p, "h2").node_id for p in range(6)]
    assert chosen == ["n2", "n3", "n2", "n3", "n2", "n3"]


def test_choose_target_spreads_evenly_without_a_local_node() -> None:
    chosen = [choose_target(TARGETS, p, "elsewhere").node_id for p in range(9)]
    assert chosen == ["n1", "n2", "n3"] * 3


def test_choose_target_is_deterministic_per_partition() -> None:
    for p in range(20):
        assert choose_target(TARGETS, p, "elsewhere") == choose_target(list(TARGETS), p, "elsewhere")


def test_push_order_tries_every_node_local_first() -> None:
    assert [t.node_id for t in push_order(TARGETS, 1, "h2")] == ["n3", "n2", "n1"]
    assert [t.node_id for t in push_order(TARGETS, 4, "elsewhere")] == ["n2", "n3", "n1"]
    for p in range(6):
        assert sorted(t.node_id for t in push_order(TARGETS, p, "h1")) == ["n1", "n2", "n3"]


def test_an_executor_pushes_to_the_next_node_when_its_first_choice_does_not_answer(node: Node) -> None:
    dead = PushTarget("dead", f"grpc://127.0.0.1:{free_port()}", "h1")
    live = PushTarget("live", f"grpc://127.0.0.1:{node.port}", "h2")
    assert _first_reachable([dead, live], timeout=5).node_id == "live"
    with pytest.raises(ConnectionError, match="no node accepts pushes: none of dead"):
        _first_reachable([dead], timeout=0.5)


# -- partitions pushed in pieces ----------------------------------------------------


def _ipc(batches: list[pa.RecordBatch]) -> Iterator[bytes]:
    """Arrow IPC record batch messages, as Spark's Arrow writer hands them to a task."""
    for b in batches:
        yield b.serialize().to_pybytes()


def test_a_partition_pushed_in_pieces_is_served_as_it_comes_and_a_retry_skips_what_was_committed(
    tmp_path: Path,
) -> None:
    """Attempt 0 commits two pieces and dies; readers already have their rows. The retry
    pushes the partition again: its first two pieces are dropped, the rest commit, and
    every row arrives exactly once."""
    from flightmanager.claims import Claim, manifests
    from flightmanager.push import _do_put
    from flightmanager.registry import MemoryRegistry, QueryInfo

    query_id = "c" * 32
    registry = MemoryRegistry()
    registry.create(QueryInfo(query_id, "alice", "n1", "SELECT", "", False, 0.0, 1.0))
    node = Node(tmp_path)
    try:
        spool = ResultSpool(
            query_id, SCHEMA, memory=ByteBudget("m", BIG), disk=ByteBudget("d", BIG), spill_dir=tmp_path / "s",
            claim=lambda key, attempt, rows, push, first, last: registry.claim(
                query_id, Claim(key, "n1", attempt, rows, push, first, last)),
        )
        node.spools[query_id] = spool
        sent = [batch(i * 10, 10) for i in range(10)]
        uri = f"grpc://127.0.0.1:{node.port}"
        mac = push_mac(PUSH_KEY, query_id)
        got: list[int] = []
        some = threading.Event()

        def read() -> None:
            for b in spool.batches():
                got.extend(b.to_record_batch(SCHEMA).column("id").to_pylist())
                if len(got) >= 30:
                    some.set()

        reader = threading.Thread(target=read)
        reader.start()
        first = _push_messages(PushHeader(query_id, 0, 0, mac), SCHEMA, _ipc(sent), [0, 0], True, 2)
        with pytest.raises(grpc.RpcError, match="ended without completing"):
            list(_do_put(uri)(first))  # cut short after two pieces
        assert some.wait(TIMEOUT), "the committed pieces are served before the partition ends"
        assert sorted(got) == list(range(30))  # pieces of 1 and 2 batches
        retry = _push_messages(PushHeader(query_id, 0, 1, mac), SCHEMA, _ipc(sent), [0, 0], True)
        assert list(_do_put(uri)(retry))[-1].endswith(b"committed")
        won = registry.won(query_id)
        assert [(piece_of(k), c.attempt, c.first, c.rows, c.last) for k, c in sorted(won.items())] == [
            ((0, 0), 0, 0, 10, False), ((0, 1), 0, 10, 20, False), ((0, 2), 1, 30, 40, False), ((0, 3), 1, 70, 30, True)
        ]
        spool.finish(manifests(query_id, won, 1, ["n1"])["n1"])
        reader.join(TIMEOUT)
        assert not reader.is_alive()
        assert got == list(range(100))  # once each, in order: the partition's own order
    finally:
        node.close()


def test_a_piece_marker_that_miscounts_is_refused(node: Node) -> None:
    from flightmanager.push import piece_marker

    node.spool("a" * 32)
    descriptor = flight.FlightDescriptor.for_command(header().encode())
    writer, reader = node.client.do_put(descriptor, SCHEMA)
    writer.write_with_metadata(batch(0, 5), pa.py_buffer(struct.pack("<q", 5)))
    writer.write_metadata(pa.py_buffer(piece_marker(4)))
    with pytest.raises(flight.FlightError, match="a piece of 4 rows announced, 5 received"):
        writer.done_writing()
        reader.read()
        writer.close()
