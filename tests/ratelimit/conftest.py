"""Fixtures for the rate-limit tests: a clock that moves only when told to, unique keys."""

from __future__ import annotations

import uuid

import pytest


class FakeClock:
    """Monotonic seconds that only move when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ns() -> str:
    """A key prefix unique to the test, so tests sharing a Redis never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]
