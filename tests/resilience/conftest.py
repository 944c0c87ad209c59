"""Fixtures for the resilience tests: a clock and a sleep that only move when told."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tenfold.resilience import set_retries_active


class FakeClock:
    """Monotonic time that only moves when told to (or when ``sleep`` is awaited)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _retries_on() -> Iterator[None]:
    yield
    set_retries_active(True)
