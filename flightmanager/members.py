"""Who is in the cluster: the live nodes, and which of them take new work.

:class:`Members` is what the manager needs; :class:`flightmanager.zk.membership.Membership`
keeps it in ZooKeeper, :class:`SoloMembers` is a cluster of one node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from flightmanager.records import Node

#: told the id of a node that left without draining
Departed = Callable[[str], None]
#: told the live nodes whenever they change
Changed = Callable[[list[Node]], None]


class Members(Protocol):
    def start(self, on_departed: Departed, on_changed: Changed) -> Members: ...

    def live(self) -> list[Node]: ...

    def targets(self) -> list[Node]:
        """The live nodes that take new work (not draining)."""

    def is_draining(self, node_id: str) -> bool: ...

    def is_live(self, node_id: str) -> bool: ...

    def drain(self) -> None:
        """Mark this node as draining: from now on it gets no new work."""

    def stop(self) -> None: ...


class SoloMembers:
    """A cluster of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._draining = False

    def start(self, on_departed: Departed, on_changed: Changed) -> SoloMembers:
        return self

    def live(self) -> list[Node]:
        return [self.node]

    def targets(self) -> list[Node]:
        return [] if self._draining else [self.node]

    def is_draining(self, node_id: str) -> bool:
        return self._draining and node_id == self.node.node_id

    def is_live(self, node_id: str) -> bool:
        return node_id == self.node.node_id

    def drain(self) -> None:
        self._draining = True

    def stop(self) -> None:
        pass
