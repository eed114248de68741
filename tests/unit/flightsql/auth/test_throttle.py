"""Password checks are rationed and failures counted per user and per address."""

from __future__ import annotations

import threading

import pytest

from flightsql.auth.throttle import LoginLimits, LoginThrottle, TooManyFailures, peer_address
from flightsql.errors import ResourceExhausted


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_user_with_too_many_failures_is_refused_without_a_check_until_the_window_passes() -> None:
    clock = Clock()
    throttle = LoginThrottle(LoginLimits(failures=3, source_failures=100, window=60), clock)
    checks = []

    def wrong() -> bool:
        checks.append(1)
        return False

    for _ in range(3):
        assert throttle.check("ann", "10.0.0.1", wrong) is False
    with pytest.raises(TooManyFailures, match="user 'ann'"):
        throttle.check("ann", "10.0.0.2", lambda: True)  # even the right password, from anywhere
    assert len(checks) == 3  # the refusal cost no check
    assert throttle.check("bob", "10.0.0.1", lambda: True) is True  # another user is not held up
    clock.now += 61
    assert throttle.check("ann", "10.0.0.1", lambda: True) is True


def test_an_address_with_too_many_failures_is_refused_for_every_user() -> None:
    throttle = LoginThrottle(LoginLimits(failures=100, source_failures=4, window=60), Clock())
    for user in ("a", "b", "c", "d"):
        throttle.check(user, "192.0.2.9", lambda: False)
    with pytest.raises(TooManyFailures, match="address 192.0.2.9"):
        throttle.check("e", "192.0.2.9", lambda: True)
    assert throttle.check("e", "192.0.2.10", lambda: True) is True


def test_checks_run_at_most_n_at_once_and_a_login_without_a_turn_is_refused() -> None:
    throttle = LoginThrottle(LoginLimits(hashes=1, wait=0.2))
    inside, release = threading.Event(), threading.Event()

    def slow() -> bool:
        inside.set()
        release.wait(10)
        return True

    worker = threading.Thread(target=throttle.check, args=("a", "x", slow))
    worker.start()
    assert inside.wait(10)
    with pytest.raises(ResourceExhausted, match="too many logins at once"):
        throttle.check("b", "y", lambda: True)
    release.set()
    worker.join(10)
    assert throttle.check("b", "y", lambda: True) is True


@pytest.mark.parametrize("peer, address", [
    ("ipv4:127.0.0.1:5555", "127.0.0.1"),
    ("ipv6:[::1]:5555", "::1"),
    ("ipv6:%5B::1%5D:5555", "::1"),
    ("unix:/tmp/socket", "unix:/tmp/socket"),
])
def test_peer_address_drops_the_port(peer: str, address: str) -> None:
    assert peer_address(peer) == address
