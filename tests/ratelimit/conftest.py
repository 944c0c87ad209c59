"""Fixtures for the rate-limit tests: a clock that moves only when told to, unique keys."""

from __future__ import annotations

import uuid

import pytest

from tenfold.testing import ManualClock as FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ns() -> str:
    """A key prefix unique to the test, so tests sharing a Redis never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]
