"""Which push of each piece of a partition counts, and where it is: the claims.

A partition is pushed as one or more **pieces**, runs of batches that commit on
their own.  A partition of a deterministic stage (Spark's ``DETERMINATE``: every
attempt yields the same rows in the same order and the same batches) is cut into
pieces of growing size, so readers get its first batches while the rest is still
being made; any other partition is one piece.  A piece is identified by its *key*
(:func:`piece_key`), partition and index together.

An executor's push of a piece commits on the node it reached only if that node wins
the piece's claim: the first push of it to complete, anywhere in the cluster.  A
retried or speculative attempt of a partition pushes every piece again; those already
claimed are dropped, the rest are claimed where the retry landed, so a partition may
be served by several nodes and every row still arrives once.  The claim records the
winning node, the attempt, the push (a random id, so that a node whose claim request
was retried after a lost reply recognises its own win), the piece's first row within
its partition, its rows, and whether it is the partition's last piece.  Each node's
manifest (what its stream must deliver) is made from the claims alone, never from
the job's task summaries: Spark reports the attempt that *it* counted, which after a
retry on another host may be an attempt the claims dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from flightmanager.errors import IncompleteResult

#: pieces a partition may have (a key holds the partition and the piece's index)
PIECES = 1 << 20


def piece_key(partition: int, index: int = 0) -> int:
    """The key of piece ``index`` of ``partition`` (a partition of one piece: its number
    times :data:`PIECES`)."""
    if not 0 <= index < PIECES:
        raise ValueError(f"piece index {index} out of range")
    return partition * PIECES + index


def piece_of(key: int) -> tuple[int, int]:
    """(partition, index) of a piece key."""
    return divmod(key, PIECES)


@dataclass(frozen=True)
class Claim:
    """The winning push of one piece."""

    key: int
    node_id: str
    attempt: int
    rows: int
    push: str
    #: the piece's first row within its partition, and whether it ends the partition
    first: int = 0
    last: bool = True

    @property
    def partition(self) -> int:
        return piece_of(self.key)[0]

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node_id, "attempt": self.attempt, "rows": self.rows, "push": self.push,
            "first": self.first, "last": self.last,
        }

    @classmethod
    def from_dict(cls, key: int, doc: Mapping[str, object]) -> Claim:
        node, attempt, rows, push = doc.get("node"), doc.get("attempt"), doc.get("rows"), doc.get("push")
        first, last = doc.get("first", 0), doc.get("last", True)
        if not (isinstance(node, str) and type(attempt) is int and type(rows) is int and isinstance(push, str)
                and type(first) is int and type(last) is bool):
            raise ValueError(f"malformed claim of piece {piece_of(key)}")
        return cls(key, node, attempt, rows, push, first, last)


def manifests(
    query_id: str, claims: Mapping[int, Claim], partitions: int, nodes: Iterable[str]
) -> dict[str, dict[int, int]]:
    """Each node's manifest ({piece key: rows}) for a job of ``partitions`` partitions.

    Every node of ``nodes`` gets one (maybe empty: its stream then sends the schema
    alone).  Each partition's pieces must run from its first row to a last piece without
    a gap or an overlap; a partition without one, or a piece won by a node that serves no
    endpoint of the query, would leave readers short or give them a row twice: that is
    an error, never a silent partial result."""
    result: dict[str, dict[int, int]] = {node: {} for node in nodes}
    by_partition: dict[int, list[Claim]] = {}
    for claim in claims.values():
        by_partition.setdefault(claim.partition, []).append(claim)
    for partition in range(partitions):
        pieces = sorted(by_partition.pop(partition, []), key=lambda c: c.key)
        _check_pieces(query_id, partition, pieces)
        for claim in pieces:
            if claim.node_id not in result:
                raise IncompleteResult(
                    f"result of query {query_id} is incomplete: partition {partition} is held by node "
                    f"{claim.node_id}, which serves no endpoint of the query"
                )
            result[claim.node_id][claim.key] = claim.rows
    if by_partition:
        raise IncompleteResult(
            f"result of query {query_id}: claims of partitions {sorted(by_partition)} the job does not have"
        )
    return result


def _check_pieces(query_id: str, partition: int, pieces: list[Claim]) -> None:
    incomplete = f"result of query {query_id} is incomplete: partition {partition}"
    if not pieces:
        raise IncompleteResult(f"{incomplete} was never claimed")
    row = 0
    for expected, claim in enumerate(pieces):
        index = piece_of(claim.key)[1]
        if index != expected:
            raise IncompleteResult(f"{incomplete} has no piece {expected}")
        if claim.first != row:
            # two attempts cut the partition differently: the stage was not deterministic
            raise IncompleteResult(
                f"result of query {query_id}: the attempts of partition {partition} disagree (piece {index} "
                f"starts at row {claim.first}, the pieces before it end at row {row})"
            )
        if claim.last != (claim is pieces[-1]):
            raise IncompleteResult(f"{incomplete} has pieces after its last" if claim.last
                                   else f"{incomplete} has no last piece")
        row += claim.rows
