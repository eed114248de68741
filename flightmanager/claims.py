"""Which attempt of each partition counts, and where it is: the claims.

An executor's push of a partition attempt commits on the node it reached only if
that node wins the partition's claim: the first attempt to complete, anywhere in the
cluster.  The claim records the winning node, the attempt, the push (a random id,
so that a node whose claim request was retried after a lost reply recognises its own
win) and the rows.  Each node's manifest (what its stream must deliver) is made from
the claims alone, never from the job's task summaries: Spark reports the attempt
that *it* counted, which after a retry on another host may be an attempt the claims
dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from flightmanager.errors import IncompleteResult


@dataclass(frozen=True)
class Claim:
    """The winning push of one partition."""

    partition: int
    node_id: str
    attempt: int
    rows: int
    push: str

    def to_dict(self) -> dict[str, object]:
        return {"node": self.node_id, "attempt": self.attempt, "rows": self.rows, "push": self.push}

    @classmethod
    def from_dict(cls, partition: int, doc: Mapping[str, object]) -> "Claim":
        node, attempt, rows, push = doc.get("node"), doc.get("attempt"), doc.get("rows"), doc.get("push")
        if not (isinstance(node, str) and type(attempt) is int and type(rows) is int and isinstance(push, str)):
            raise ValueError(f"malformed claim of partition {partition}")
        return cls(partition, node, attempt, rows, push)


def manifests(query_id: str, claims: Mapping[int, Claim], partitions: int, nodes: Iterable[str]) -> dict[str, dict[int, int]]:
    """Each node's manifest ({partition: rows}) for a job of ``partitions`` partitions.

    Every node of ``nodes`` gets one (maybe empty: its stream then sends the schema
    alone).  A partition nobody won, or won by a node that serves no endpoint of the
    query, would leave readers short: that is an error, never a silent partial result."""
    result: dict[str, dict[int, int]] = {node: {} for node in nodes}
    for partition in range(partitions):
        claim = claims.get(partition)
        if claim is None:
            raise IncompleteResult(f"result of query {query_id} is incomplete: partition {partition} was never claimed")
        if claim.node_id not in result:
            raise IncompleteResult(
                f"result of query {query_id} is incomplete: partition {partition} is held by node "
                f"{claim.node_id}, which serves no endpoint of the query"
            )
        result[claim.node_id][partition] = claim.rows
    extra = sorted(set(claims) - set(range(partitions)))
    if extra:
        raise IncompleteResult(f"result of query {query_id}: claims of partitions {extra} the job does not have")
    return result
