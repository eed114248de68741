"""Claims and the manifests made from them: which push of each partition counts, and where."""

from __future__ import annotations

import pytest

from flightmanager.claims import Claim, manifests, piece_key, piece_of
from flightmanager.errors import IncompleteResult
from flightmanager.registry import MemoryRegistry, QueryInfo

QUERY = "q" * 32


def test_the_first_push_of_a_partition_wins_and_recognises_itself() -> None:
    book = MemoryRegistry()
    book.create(QueryInfo(QUERY, "alice", "a", "SELECT 1", "", False, 0.0, 1.0))
    first = Claim(0, "a", 0, 10, "push-1")
    assert book.claim(QUERY, first) is True
    assert book.claim(QUERY, first) is True  # the same push asking again
    assert book.claim(QUERY, Claim(0, "b", 1, 10, "push-2")) is False
    assert book.won(QUERY) == {0: first}
    book.delete(QUERY)
    assert book.won(QUERY) == {}
    assert book.claim(QUERY, first) is False  # the query is gone


def test_manifests_follow_the_claims_not_the_attempt_spark_counted() -> None:
    """Attempt 0 of partition 1 won on node a; Spark's successful attempt 1 ran on
    another host and was dropped by node b: node a serves it."""
    claims = {k: Claim(k, n, 0, r, f"p{k}") for k, n, r in ((piece_key(0), "b", 4), (piece_key(1), "a", 6),
                                                          (piece_key(2), "b", 0))}
    assert manifests(QUERY, claims, 3, ["a", "b", "c"]) == {
        "a": {piece_key(1): 6}, "b": {piece_key(0): 4, piece_key(2): 0}, "c": {}}


def test_a_partition_nobody_claimed_is_an_error_not_a_short_result() -> None:
    with pytest.raises(IncompleteResult, match="partition 1 was never claimed"):
        manifests(QUERY, {0: Claim(0, "a", 0, 1, "p")}, 2, ["a"])


def _pieces(partition: int, spec: list[tuple[str, int, int]], last: bool = True) -> dict[int, Claim]:
    """Claims of the pieces of ``partition``: (node, attempt, rows) each, in order."""
    claims, first = {}, 0
    for index, (node, attempt, rows) in enumerate(spec):
        key = piece_key(partition, index)
        claims[key] = Claim(key, node, attempt, rows, f"push-{partition}-{index}-{attempt}", first,
                            last and index == len(spec) - 1)
        first += rows
    return claims


def test_a_partition_retried_midway_is_served_by_both_nodes_once() -> None:
    """Attempt 0 committed pieces 0 and 1 on node a and died; attempt 1 ran on another
    host, its pieces 0 and 1 were dropped there and it won pieces 2 and 3 on node b."""
    claims = _pieces(0, [("a", 0, 1), ("a", 0, 2), ("b", 1, 4), ("b", 1, 3)])
    made = manifests(QUERY, claims, 1, ["a", "b"])
    assert made == {"a": {piece_key(0, 0): 1, piece_key(0, 1): 2}, "b": {piece_key(0, 2): 4, piece_key(0, 3): 3}}
    assert piece_of(piece_key(5, 7)) == (5, 7)


@pytest.mark.parametrize(("claims", "message"), [
    ({k: c for k, c in _pieces(0, [("a", 0, 1), ("a", 0, 2), ("b", 1, 4)]).items() if k != piece_key(0, 1)},
     "partition 0 has no piece 1"),
    (_pieces(0, [("a", 0, 1), ("a", 0, 2)], last=False), "partition 0 has no last piece"),
])
def test_a_gap_in_a_partitions_pieces_is_an_error(claims: dict[int, Claim], message: str) -> None:
    with pytest.raises(IncompleteResult, match=message):
        manifests(QUERY, claims, 1, ["a", "b"])


def test_attempts_that_cut_a_partition_differently_are_caught() -> None:
    """A stage that was not deterministic after all: the retry's piece 1 starts at
    another row than the first attempt's piece 0 ended."""
    claims = _pieces(0, [("a", 0, 5), ("b", 1, 5)])
    shifted = claims[piece_key(0, 1)]
    claims[piece_key(0, 1)] = Claim(shifted.key, "b", 1, 5, shifted.push, first=3, last=True)
    with pytest.raises(IncompleteResult, match="the attempts of partition 0 disagree"):
        manifests(QUERY, claims, 1, ["a", "b"])


def test_a_claim_by_a_node_without_an_endpoint_is_an_error() -> None:
    with pytest.raises(IncompleteResult, match="node z, which serves no endpoint"):
        manifests(QUERY, {0: Claim(0, "z", 0, 1, "p")}, 1, ["a"])


def test_claims_beyond_the_job_s_partitions_are_an_error() -> None:
    with pytest.raises(IncompleteResult, match=r"partitions \[3\]"):
        extra = piece_key(3)
        manifests(QUERY, {0: Claim(0, "a", 0, 1, "p"), extra: Claim(extra, "a", 0, 1, "q")}, 1, ["a"])


@pytest.mark.parametrize(
    "doc", [{}, {"node": 1, "attempt": 0, "rows": 1, "push": "p"}, {"node": "a", "attempt": True, "rows": 1, "push": "p"}]
)
def test_malformed_claims_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="malformed claim"):
        Claim.from_dict(0, doc)
