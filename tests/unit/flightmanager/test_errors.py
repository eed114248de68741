"""One error model: codes on classes, a failure's class chosen by its status, one log level per status."""

from __future__ import annotations

import logging

import grpc
import pytest

from flightmanager.errors import (
    FlightManagerError,
    NodeLost,
    QueryCancelled,
    QueryFailed,
    QueryInvalid,
    QueryTargetMissing,
    QueryUnsupported,
    failure,
)
from flightmanager.flight.status import Status, status_of


def _all_subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_all_subclasses(sub))]


def test_every_error_names_its_status_on_its_class() -> None:
    for cls in _all_subclasses(FlightManagerError):
        assert isinstance(cls.__dict__.get("code"), grpc.StatusCode), cls.__name__


@pytest.mark.parametrize(("code", "cls"), [
    (grpc.StatusCode.INVALID_ARGUMENT, QueryInvalid),
    ("INVALID_ARGUMENT", QueryInvalid),
    (grpc.StatusCode.UNIMPLEMENTED, QueryUnsupported),
    ("NOT_FOUND", QueryTargetMissing),
    ("CANCELLED", QueryCancelled),
    ("UNAVAILABLE", NodeLost),
    ("INTERNAL", QueryFailed),
    ("NO_SUCH_CODE", QueryFailed),
    (None, QueryFailed),
])
def test_a_failure_is_the_class_of_its_status(code: grpc.StatusCode | str | None, cls: type) -> None:
    error = failure(code, "query q failed: it did")
    assert type(error) is cls
    assert error.message == "query q failed: it did"
    assert status_of(error) == (cls.code, "query q failed: it did")


def test_a_failure_read_back_keeps_its_status() -> None:
    first = QueryInvalid("query q failed: [DIVIDE_BY_ZERO]")
    again = failure(first.code.name, first.message)  # as the registry keeps it
    assert (type(again), again.code, again.message) == (QueryInvalid, first.code, first.message)


@pytest.mark.parametrize(("code", "level"), [
    (grpc.StatusCode.INVALID_ARGUMENT, logging.DEBUG),
    (grpc.StatusCode.NOT_FOUND, logging.DEBUG),
    (grpc.StatusCode.CANCELLED, logging.DEBUG),
    (grpc.StatusCode.UNAUTHENTICATED, logging.INFO),
    (grpc.StatusCode.PERMISSION_DENIED, logging.INFO),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, logging.WARNING),
    (grpc.StatusCode.UNAVAILABLE, logging.WARNING),
    (grpc.StatusCode.INTERNAL, logging.DEBUG),  # logged where it happened, with its query
])
def test_a_failed_call_is_logged_at_the_level_of_its_status(code: grpc.StatusCode, level: int,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    assert Status(code, "m").log_level == level
    error_class = type("Failure", (FlightManagerError,), {"code": code})
    with caplog.at_level(logging.DEBUG, logger="flightmanager.flight.status"):
        status_of(error_class("what went wrong\nsecond line"), call="GetFlightInfo")
    [record] = caplog.records
    assert record.levelno == level
    assert record.getMessage() == f"GetFlightInfo failed: {code.name}: what went wrong"
    assert "second line" not in record.getMessage()


def test_an_error_without_a_call_name_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="flightmanager.flight.status"):
        status_of(QueryInvalid("bad"))
    assert caplog.records == []
