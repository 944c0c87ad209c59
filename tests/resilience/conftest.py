"""Fixtures for the resilience tests: a clock and a sleep that only move when told."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tenfold.resilience import set_retries_active
from tenfold.testing import ManualClock as FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _retries_on() -> Iterator[None]:
    yield
    set_retries_active(True)
