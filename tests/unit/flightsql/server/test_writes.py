"""One write into a table at a time: TableWrites with this process's own locks (the
ZooKeeper locks of a node are tested through real nodes in test_datasource)."""

from __future__ import annotations

import threading

import grpc
import pytest

from flightsql.errors import Aborted
from flightsql.server.writes import TableWrites


def test_a_second_write_into_a_table_waits_for_the_first() -> None:
    writes = TableWrites(wait=5)
    order: list[str] = []
    first_holds, second_tried = threading.Event(), threading.Event()

    def second() -> None:
        second_tried.set()
        with writes.hold(["spark_catalog.default.T"]):  # the same table, spelled otherwise
            order.append("second")

    with writes.hold(["spark_catalog.default.t"]):
        first_holds.set()
        thread = threading.Thread(target=second)
        thread.start()
        second_tried.wait(5)
        thread.join(0.3)
        assert thread.is_alive()  # still waiting
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]


def test_writes_into_other_tables_do_not_wait() -> None:
    writes = TableWrites(wait=0.1)
    with writes.hold(["c.s.a"]):
        with writes.hold(["c.s.b"]):
            pass


def test_a_write_that_waits_too_long_is_aborted_with_the_table_named() -> None:
    writes = TableWrites(wait=0.2)
    with writes.hold(["c.s.busy"]):
        with pytest.raises(Aborted, match="another write into c.s.busy") as caught:
            with writes.hold(["c.s.other", "c.s.busy"]):
                pass
    assert caught.value.code is grpc.StatusCode.ABORTED
    with writes.hold(["c.s.other"]):  # what the aborted write held was let go
        pass
