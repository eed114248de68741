"""Claims and the manifests made from them: which push of each partition counts, and where."""

from __future__ import annotations

import pytest

from flightmanager.claims import Claim, manifests
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
    claims = {0: Claim(0, "b", 0, 4, "p0"), 1: Claim(1, "a", 0, 6, "p1"), 2: Claim(2, "b", 0, 0, "p2")}
    assert manifests(QUERY, claims, 3, ["a", "b", "c"]) == {"a": {1: 6}, "b": {0: 4, 2: 0}, "c": {}}


def test_a_partition_nobody_claimed_is_an_error_not_a_short_result() -> None:
    with pytest.raises(IncompleteResult, match="partition 1 was never claimed"):
        manifests(QUERY, {0: Claim(0, "a", 0, 1, "p")}, 2, ["a"])


def test_a_claim_by_a_node_without_an_endpoint_is_an_error() -> None:
    with pytest.raises(IncompleteResult, match="node z, which serves no endpoint"):
        manifests(QUERY, {0: Claim(0, "z", 0, 1, "p")}, 1, ["a"])


def test_claims_beyond_the_job_s_partitions_are_an_error() -> None:
    with pytest.raises(IncompleteResult, match=r"partitions \[3\]"):
        manifests(QUERY, {0: Claim(0, "a", 0, 1, "p"), 3: Claim(3, "a", 0, 1, "q")}, 1, ["a"])


@pytest.mark.parametrize(
    "doc", [{}, {"node": 1, "attempt": 0, "rows": 1, "push": "p"}, {"node": "a", "attempt": True, "rows": 1, "push": "p"}]
)
def test_malformed_claims_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="malformed claim"):
        Claim.from_dict(0, doc)
