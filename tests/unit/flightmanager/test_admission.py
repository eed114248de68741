"""Admission: limits per node and per user, a bounded queue with a wait limit, fairness."""

from __future__ import annotations

import grpc
import pytest

from flightmanager.admission import Admission, Limits
from flightmanager.errors import ServerBusy


def test_queries_run_up_to_the_limits_then_wait() -> None:
    admission = Admission(Limits(running=2, per_user=2, queued=5, wait=10))
    assert admission.offer("a1", "alice", 0.0) is True
    assert admission.offer("b1", "bob", 0.0) is True
    assert admission.offer("a2", "alice", 0.0) is False
    assert (admission.running, admission.waiting, admission.position("a2")) == (2, 1, 1)


def test_one_user_cannot_take_every_slot() -> None:
    admission = Admission(Limits(running=4, per_user=2, queued=5, wait=10))
    assert [admission.offer(f"a{i}", "alice", 0.0) for i in range(3)] == [True, True, False]
    assert admission.offer("b1", "bob", 0.0) is True  # alice's waiting query does not hold bob's
    assert admission.release("alice") == ["a2"]


def test_a_freed_slot_goes_to_the_user_with_the_fewest_running() -> None:
    admission = Admission(Limits(running=2, per_user=2, queued=10, wait=10))
    admission.offer("a1", "alice", 0.0)
    admission.offer("a2", "alice", 0.0)
    for i in range(3, 6):
        admission.offer(f"a{i}", "alice", float(i))
    admission.offer("b1", "bob", 9.0)
    assert admission.release("alice") == ["b1"]  # bob runs nothing; alice's burst waits
    assert admission.release("bob") == ["a3"]


def test_a_full_queue_refuses_with_resource_exhausted_and_says_when_to_retry() -> None:
    admission = Admission(Limits(running=1, per_user=1, queued=1, wait=20), node="n1:31337")
    admission.offer("q1", "alice", 0.0)
    admission.offer("q2", "bob", 0.0)
    assert admission.full()
    with pytest.raises(ServerBusy) as refused:
        admission.offer("q3", "carol", 0.0)
    assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    message = refused.value.message
    assert "the server is busy" in message and "n1:31337" in message and "try again in about 5 s" in message


def test_waiting_queries_time_out_in_order_and_leave_the_queue() -> None:
    admission = Admission(Limits(running=1, per_user=1, queued=5, wait=10))
    admission.offer("q1", "alice", 0.0)
    admission.offer("q2", "bob", 1.0)
    admission.offer("q3", "carol", 4.0)
    assert admission.next_deadline() == 11.0
    assert admission.overdue(10.5) == []
    assert admission.overdue(11.0) == ["q2"]
    assert admission.position("q3") == 1 and admission.next_deadline() == 14.0


def test_a_withdrawn_query_frees_its_place_and_nothing_else() -> None:
    admission = Admission(Limits(running=1, per_user=1, queued=5, wait=10))
    admission.offer("q1", "alice", 0.0)
    admission.offer("q2", "bob", 0.0)
    assert admission.withdraw("q2") == []
    assert admission.waiting == 0 and admission.running == 1
    assert admission.release("alice") == []
    assert admission.offer("q3", "bob", 1.0) is True


def test_nothing_queued_means_no_deadline_and_limits_are_checked() -> None:
    assert Admission(Limits()).next_deadline() is None
    with pytest.raises(ValueError):
        Limits(running=0).check()
    with pytest.raises(ValueError):
        Limits(queued=-1).check()
