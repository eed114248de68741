"""The query lifecycle: every event in every state, for the coordinator and for a node
that only holds a part.  Pure: no ZooKeeper, no Spark, no clock."""

from __future__ import annotations

import logging
from dataclasses import replace

import grpc
import pytest

from flightmanager import lifecycle as lc
from flightmanager.errors import FlightManagerError, NodeLost, QueryCancelled
from flightmanager.query import QueryState

P, R, F, X, C, E = (
    QueryState.PENDING, QueryState.RUNNING, QueryState.FINISHED, QueryState.FAILED, QueryState.CANCELLED,
    QueryState.EXPIRED,
)
BOOM = FlightManagerError("query q failed: boom")


def life(state: QueryState = R, *, me: str = "a", coordinator: str = "a", expires_at: float = 700.0) -> lc.Life:
    return lc.Life("q", me, coordinator, frozenset({"a", "b"}), 600.0, 100.0, expires_at, state=state)


EVENTS: dict[str, lc.Event] = {
    "started": lc.Started(),
    "claim": lc.ClaimWon(3, "a"),
    "job succeeded": lc.JobSucceeded({"a": {0: 5}, "b": {1: 7}}, 200.0),
    "job failed": lc.JobFailed(BOOM, 200.0),
    "manifest": lc.ManifestWritten({1: 7}, 200.0),
    "ended elsewhere": lc.EndedElsewhere(X, BOOM, 200.0),
    "node left": lc.NodeLeft("b", 200.0),
    "node suspected": lc.NodeSuspected("b", "h2", 200.0),
    "unrelated node left": lc.NodeLeft("z", 200.0),
    "cancel": lc.CancelRequested("alice", 200.0),
    "renewed": lc.Renewed(900.0),
    "extended elsewhere": lc.ExtendedElsewhere(900.0),
    "time up": lc.TimeUp(800.0),
    "expire": lc.Expire("closed"),
    "drain timed out": lc.DrainTimedOut(200.0),
    "recording failed": lc.RecordingFailed(BOOM, 200.0),
    "waited too long": lc.WaitedTooLong(BOOM, 200.0),
}

#: the state each event leads to, from each state, on the coordinator (a) and on a node
#: that holds a part (b, coordinator a)
COORDINATOR: dict[str, dict[QueryState, QueryState]] = {
    "started": {P: R, R: R, F: F, X: X, C: C},
    "claim": {P: P, R: R, F: F, X: X, C: C},
    "job succeeded": {P: F, R: F, F: F, X: X, C: C},
    "job failed": {P: X, R: X, F: F, X: X, C: C},
    "manifest": {P: P, R: R, F: F, X: X, C: C},  # its own echo: it finished from its job
    "ended elsewhere": {P: X, R: X, F: X, X: X, C: C},
    "node left": {P: X, R: X, F: X, X: X, C: C},
    "node suspected": {P: X, R: X, F: X, X: X, C: C},
    "unrelated node left": {P: P, R: R, F: F, X: X, C: C},
    "cancel": {P: C, R: C, F: F, X: X, C: C},
    "renewed": {P: P, R: R, F: F, X: X, C: C},
    "extended elsewhere": {P: P, R: R, F: F, X: X, C: C},
    "time up": {P: P, R: R, F: E, X: E, C: E},
    "expire": {P: E, R: E, F: E, X: E, C: E},
    "drain timed out": {P: X, R: X, F: X, X: X, C: C},
    "recording failed": {P: X, R: X, F: X, X: X, C: C},
    "waited too long": {P: X, R: R, F: F, X: X, C: C},  # running meanwhile: too late to refuse
}
FOLLOWER = {
    **COORDINATOR,
    "job succeeded": {P: P, R: R, F: F, X: X, C: C},  # only the coordinator runs the job
    "manifest": {P: F, R: F, F: F, X: X, C: C},
    # b is this node: its own departure is not a reason; the coordinator's is
    "node left": {P: P, R: R, F: F, X: X, C: C},
    "node suspected": {P: P, R: R, F: F, X: X, C: C},
}

CASES = [
    (role, name, state)
    for role, table in (("coordinator", COORDINATOR), ("follower", FOLLOWER))
    for name in EVENTS
    for state in QueryState
]


@pytest.mark.parametrize(("role", "name", "state"), CASES, ids=[f"{r}-{n}-{s.value}" for r, n, s in CASES])
def test_every_event_in_every_state(role: str, name: str, state: QueryState) -> None:
    me = "a" if role == "coordinator" else "b"
    before = life(state, me=me)
    after = lc.step(before, EVENTS[name])
    table = COORDINATOR if role == "coordinator" else FOLLOWER
    expected = E if state is E else table[name][state]
    assert after.life.state is expected
    if state is E:
        assert after.actions == () and after.life == before  # nothing is left to change
    if after.life.state in (X, C) and state not in (X, C, E):
        assert after.life.error is not None
        assert any(isinstance(a, lc.FailSpool) for a in after.actions), "every reader must get the error"
    if after.life.state is E and state is not E:
        assert any(isinstance(a, lc.CloseSpool) for a in after.actions)
        assert after.life.outcome is state


def _kinds(step: lc.Step) -> list[type]:
    return [type(a) for a in step.actions if not isinstance(a, lc.Log)]


def test_the_coordinator_finishing_tells_every_node_and_keeps_the_result_one_ttl() -> None:
    done = lc.step(life(R), EVENTS["job succeeded"])
    assert _kinds(done) == [lc.WriteManifests, lc.FinishSpool, lc.RecordEnd, lc.ScheduleExpiry, lc.CountEnd]
    write, finish, record, schedule, count = [a for a in done.actions if not isinstance(a, lc.Log)]
    assert write == lc.WriteManifests({"b": {1: 7}})  # its own it finishes itself
    assert finish == lc.FinishSpool({0: 5})
    assert done.life.expires_at == 800.0 == schedule.at  # one TTL from completion, later than advertised
    assert record == lc.RecordEnd(F, None, 200.0, 800.0)
    assert count == lc.CountEnd(F, 100.0)
    assert done.life.finished_at == 200.0


def test_a_follower_finishes_with_its_own_manifest_and_writes_nothing() -> None:
    done = lc.step(life(R, me="b"), EVENTS["manifest"])
    assert done.actions == (lc.FinishSpool({1: 7}),)


def test_a_failed_job_stops_nothing_twice_and_is_counted_once() -> None:
    failed = lc.step(life(R), EVENTS["job failed"])
    assert _kinds(failed) == [lc.CancelJob, lc.FailSpool, lc.RecordEnd, lc.CountEnd]
    assert failed.life.error is BOOM
    # the job thread reports the cancelled job's failure after a cancel: ignored
    cancelled = lc.step(life(R), EVENTS["cancel"])
    assert isinstance(cancelled.life.error, QueryCancelled)
    assert lc.step(cancelled.life, EVENTS["job failed"]).actions == ()
    # a node lost after the end was counted fails the result but counts nothing more
    finished = lc.step(life(R), EVENTS["job succeeded"]).life
    lost = lc.step(finished, EVENTS["node left"])
    assert lc.CountEnd not in _kinds(lost) and lc.CancelJob not in _kinds(lost)


def test_a_lost_node_is_named_with_its_role_and_how_it_was_lost() -> None:
    coordinator_gone = lc.step(life(R, me="b"), lc.NodeSuspected("a", "h1", 5.0))
    assert isinstance(coordinator_gone.life.error, NodeLost)
    assert coordinator_gone.life.error.message == "query q failed: coordinator a stopped answering (host h1)"
    assert coordinator_gone.life.error.code is grpc.StatusCode.UNAVAILABLE
    holder_gone = lc.step(life(R), lc.NodeLeft("b", 5.0))
    assert holder_gone.life.error is not None
    assert holder_gone.life.error.message == "query q failed: node holding part of the result b was lost"
    assert lc.Log(logging.WARNING, holder_gone.life.error.message) in holder_gone.actions


def test_the_registrys_verdict_is_followed_not_written_back() -> None:
    ended = lc.step(life(R, me="b"), EVENTS["ended elsewhere"])
    assert _kinds(ended) == [lc.FailSpool]
    on_coordinator = lc.step(life(R), lc.EndedElsewhere(C, QueryCancelled("query q was cancelled"), 3.0))
    assert on_coordinator.life.state is C
    assert _kinds(on_coordinator) == [lc.CancelJob, lc.FailSpool, lc.CountEnd]


def test_a_running_query_does_not_expire_its_lifetime_starts_when_complete() -> None:
    waited = lc.step(life(R, expires_at=700.0), lc.TimeUp(750.0))
    assert waited.life.state is R
    assert waited.actions == (lc.ScheduleExpiry(1350.0),)
    assert waited.life.expires_at == 1350.0


def test_a_renewed_result_does_not_expire_at_its_old_time() -> None:
    renewed = lc.step(life(F, expires_at=700.0), lc.Renewed(900.0))
    assert renewed.actions == (lc.ScheduleExpiry(900.0), lc.RecordExpiry(900.0))
    old_alarm = lc.step(renewed.life, lc.TimeUp(700.0))
    assert old_alarm.life.state is F and old_alarm.actions == (lc.ScheduleExpiry(900.0),)
    # an older expiry from the registry changes nothing
    assert lc.step(renewed.life, lc.ExtendedElsewhere(800.0)).actions == ()


def test_expiry_on_the_coordinator_stops_the_job_and_deletes_the_record() -> None:
    gone = lc.step(life(R), EVENTS["expire"])
    assert _kinds(gone) == [lc.CancelJob, lc.CloseSpool, lc.DeleteRecord]
    follower = lc.step(life(F, me="b"), EVENTS["expire"])
    assert _kinds(follower) == [lc.CloseSpool]  # the record is the coordinator's to delete


def test_claims_are_counted_while_the_job_runs() -> None:
    current = life(R)
    for partition in range(3):
        current = lc.step(current, lc.ClaimWon(partition, "b")).life
    assert current.claimed == 3


def test_a_drain_that_ran_out_names_the_node() -> None:
    failed = lc.step(life(F, me="b"), EVENTS["drain timed out"])
    assert failed.life.error is not None
    assert failed.life.error.message == "query q failed: node b was stopped before its part was read"
    assert lc.RecordEnd in _kinds(failed)  # the other nodes' readers must learn it too


def test_a_registry_that_cannot_be_written_fails_the_query_without_writing_again() -> None:
    finished = lc.step(life(R), EVENTS["job succeeded"]).life
    failed = lc.step(finished, EVENTS["recording failed"])
    assert failed.life.state is X
    assert lc.RecordEnd not in _kinds(failed) and lc.WriteManifests not in _kinds(failed)


def test_steps_do_not_change_the_life_they_are_given() -> None:
    before = life(R)
    copy = replace(before)
    for event in EVENTS.values():
        lc.step(before, event)
    assert before == copy


def test_a_query_that_never_ran_leaves_the_queue_and_stops_no_job() -> None:
    for event in (EVENTS["cancel"], EVENTS["waited too long"], EVENTS["expire"], EVENTS["node left"]):
        ended = lc.step(life(P), event)
        assert lc.LeaveQueue in _kinds(ended) and lc.CancelJob not in _kinds(ended)
    refused = lc.step(life(P), EVENTS["waited too long"])
    assert refused.life.error is BOOM and lc.RecordEnd in _kinds(refused)


def _moves() -> set[tuple[QueryState, QueryState]]:
    """Every state change any event makes, for either role."""
    moves = set()
    for me in ("a", "b"):
        for state in QueryState:
            for event in EVENTS.values():
                after = lc.step(life(state, me=me), event).life.state
                if after is not state:
                    moves.add((state, after))
    return moves


def test_ended_queries_only_expire_and_expired_is_final() -> None:
    moves = _moves()
    assert {s for s in QueryState if s.terminal} == {X, C, E}
    assert all(after is E for before, after in moves if before.terminal)
    assert not any(before is E for before, _ in moves)
    assert (F, R) not in moves and (F, P) not in moves and (R, P) not in moves  # never backwards
    assert {before for before, after in moves if after is E} == set(QueryState) - {E}  # all can expire
