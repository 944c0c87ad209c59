"""The sliding-window log in memory under a fake clock: exact over any span of one period."""

from __future__ import annotations

from tenfold.ratelimit import MemoryBackend, Rate, Rule

from .conftest import FakeClock

RULE = Rule(Rate(3, 10.0), algorithm="sliding_window")


async def test_window_slides(clock: FakeClock) -> None:
    """An admission leaves the window exactly one period after it was made."""
    backend = MemoryBackend(clock=clock)
    for _ in range(2):
        assert (await backend.hit("k", RULE)).allowed
        clock.advance(4.0)
    assert (await backend.hit("k", RULE)).allowed  # at 8 s: entries at 0, 4, 8
    refused = await backend.hit("k", RULE)
    assert not refused.allowed
    assert refused.retry_after == 2.0  # the entry at 0 leaves at 10
    clock.advance(1.999)
    assert not (await backend.hit("k", RULE)).allowed
    clock.advance(0.001)
    assert (await backend.hit("k", RULE)).allowed


async def test_no_span_exceeds_the_limit(clock: FakeClock) -> None:
    """Hitting every 0.5 s for a minute, no 10 s span ever holds more than 3 admissions."""
    backend = MemoryBackend(clock=clock, sweep_every=7)
    admitted: list[float] = []
    for _ in range(120):
        if (await backend.hit("k", RULE)).allowed:
            admitted.append(clock.now)
        clock.advance(0.5)
    assert all(sum(t <= a < t + 10.0 for a in admitted) <= 3 for t in admitted)
    assert len(admitted) == 18  # 3 per 10 s over 60 s


async def test_reset_after_is_when_the_newest_leaves(clock: FakeClock) -> None:
    """reset_after is a full period after an admission, and shrinks while refused."""
    backend = MemoryBackend(clock=clock)
    assert (await backend.hit("k", RULE, cost=3)).reset_after == 10.0
    clock.advance(4.0)
    refused = await backend.hit("k", RULE)
    assert (refused.allowed, refused.reset_after, refused.retry_after) == (False, 6.0, 6.0)
