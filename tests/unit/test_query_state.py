"""The query lifecycle: which moves are allowed, which are refused, which states are final."""

from __future__ import annotations

import itertools

import pytest

from flightmanager.query import InvalidTransition, QueryState, transition

S = QueryState

ALLOWED = {
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.EXPIRED),
    (S.RUNNING, S.FINISHED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.EXPIRED),
    (S.FINISHED, S.EXPIRED),
    (S.FINISHED, S.CANCELLED),
    (S.FAILED, S.EXPIRED),
    (S.CANCELLED, S.EXPIRED),
}

ALL_PAIRS = list(itertools.product(QueryState, QueryState))


@pytest.mark.parametrize("current, target", sorted(ALLOWED, key=lambda p: (p[0].value, p[1].value)))
def test_allowed_transitions(current: QueryState, target: QueryState) -> None:
    assert current.can_move_to(target)
    assert transition(current, target) is target


@pytest.mark.parametrize(
    "current, target",
    sorted(set(ALL_PAIRS) - ALLOWED, key=lambda p: (p[0].value, p[1].value)),
)
def test_refused_transitions(current: QueryState, target: QueryState) -> None:
    assert not current.can_move_to(target)
    with pytest.raises(InvalidTransition) as info:
        transition(current, target)
    assert current.value in str(info.value)
    assert target.value in str(info.value)


def test_invalid_transition_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        transition(S.EXPIRED, S.RUNNING)


def test_no_state_moves_to_itself() -> None:
    for state in QueryState:
        assert not state.can_move_to(state)


def test_nothing_goes_back_to_pending_or_running_after_it_ended() -> None:
    for state in (S.FINISHED, S.FAILED, S.CANCELLED, S.EXPIRED):
        assert not state.can_move_to(S.PENDING)
        assert not state.can_move_to(S.RUNNING)


def test_a_failed_or_cancelled_query_never_finishes() -> None:
    assert not S.FAILED.can_move_to(S.FINISHED)
    assert not S.CANCELLED.can_move_to(S.FINISHED)
    assert not S.FAILED.can_move_to(S.CANCELLED)
    assert not S.CANCELLED.can_move_to(S.FAILED)


def test_finished_result_stays_readable_until_closed_or_expired() -> None:
    assert not S.FINISHED.terminal
    assert S.FINISHED.can_move_to(S.CANCELLED)
    assert S.FINISHED.can_move_to(S.EXPIRED)
    assert not S.FINISHED.can_move_to(S.FAILED)


def test_terminal_states() -> None:
    assert {s for s in QueryState if s.terminal} == {S.FAILED, S.CANCELLED, S.EXPIRED}
    assert not S.PENDING.terminal
    assert not S.RUNNING.terminal


def test_terminal_states_can_only_expire() -> None:
    for state in QueryState:
        if state.terminal:
            assert {t for t in QueryState if state.can_move_to(t)} <= {S.EXPIRED}


def test_expired_is_final() -> None:
    assert not any(S.EXPIRED.can_move_to(t) for t in QueryState)


def test_every_state_reaches_expired() -> None:
    for state in QueryState:
        seen = {state}
        frontier = [state]
        while frontier:
            current = frontier.pop()
            for target in QueryState:
                if current.can_move_to(target) and target not in seen:
                    seen.add(target)
                    frontier.append(target)
        assert S.EXPIRED in seen


def test_a_typical_life() -> None:
    state = S.PENDING
    for target in (S.RUNNING, S.FINISHED, S.EXPIRED):
        state = transition(state, target)
    assert state is S.EXPIRED
