"""UpstreamQuota: header parsing, window resets and local refusals under a fake wall clock."""

from __future__ import annotations

import email.utils

import pytest

from tenfold.resilience import QuotaExhausted, UpstreamQuota
from tenfold.testing import ManualClock as WallClock

# A quarter-hour boundary (epoch seconds are UTC); start 100 s after it.
BOUNDARY = (1_700_000_000 // 900) * 900.0
START = BOUNDARY + 100.0
MIDNIGHT = (START // 86400 + 1) * 86400


def strava(limit: str, usage: str) -> dict[str, str]:
    return {"X-RateLimit-Limit": limit, "X-RateLimit-Usage": usage}


@pytest.fixture
def wall() -> WallClock:
    """Epoch seconds, 100 s into a quarter hour, that move only when told to or slept."""
    return WallClock(START)


def quota_for(wall: WallClock, max_wait: float = 0.0) -> UpstreamQuota:
    return UpstreamQuota("strava", clock=wall, sleep=wall.sleep, max_wait=max_wait)


async def test_strava_headers_give_remaining_per_window(wall: WallClock) -> None:
    """Strava-style limit/usage headers set both windows' remaining counts."""
    quota = quota_for(wall)
    await quota.before_request()
    quota.record(200, strava("100,1000", "37,412"))
    assert quota.remaining() == {"15m": 63, "daily": 588}


async def test_full_15_minute_window_refuses_until_the_boundary(wall: WallClock) -> None:
    """A used-up 15-minute window refuses locally with retry_after up to the next boundary."""
    quota = quota_for(wall)
    quota.record(200, strava("10,1000", "10,10"))
    with pytest.raises(QuotaExhausted) as info:
        await quota.before_request()
    assert info.value.window == "15m"
    assert info.value.retry_after == pytest.approx(BOUNDARY + 900 - START)
    wall.now = BOUNDARY + 900
    await quota.before_request()
    assert quota.remaining()["15m"] == 9


async def test_full_daily_window_refuses_until_utc_midnight(wall: WallClock) -> None:
    """A used-up daily window refuses until the next UTC midnight."""
    quota = quota_for(wall)
    quota.record(200, strava("100,1000", "5,1000"))
    with pytest.raises(QuotaExhausted) as info:
        await quota.before_request()
    assert info.value.window == "daily"
    assert info.value.retry_after == pytest.approx(MIDNIGHT - START)


async def test_short_wait_is_slept_not_refused(wall: WallClock) -> None:
    """A wait under max_wait is slept through, then the request goes."""
    wall.now = BOUNDARY + 899.5
    quota = quota_for(wall, max_wait=1.0)
    quota.record(200, strava("10,1000", "10,10"))
    await quota.before_request()
    assert wall.slept == [pytest.approx(0.5)]
    assert quota.in_flight == 1


async def test_requests_in_flight_count_against_the_quota(wall: WallClock) -> None:
    """Reservations not yet answered use up the quota, so concurrent callers cannot overshoot."""
    quota = quota_for(wall)
    quota.record(200, strava("10,1000", "8,8"))
    await quota.before_request()
    await quota.before_request()
    with pytest.raises(QuotaExhausted):
        await quota.before_request()
    quota.record(200, strava("10,1000", "9,9"))
    assert quota.remaining()["15m"] == 0


async def test_retry_after_seconds_blocks_requests(wall: WallClock) -> None:
    """A 429 with Retry-After in seconds blocks requests for that long."""
    quota = quota_for(wall)
    quota.record(429, {"Retry-After": "30"})
    with pytest.raises(QuotaExhausted) as info:
        await quota.before_request()
    assert info.value.window == "retry-after"
    assert info.value.retry_after == pytest.approx(30.0)
    wall.now += 30
    await quota.before_request()


async def test_retry_after_http_date_blocks_requests(wall: WallClock) -> None:
    """A 503 with Retry-After as an HTTP date blocks requests until that date."""
    quota = quota_for(wall)
    quota.record(503, {"Retry-After": email.utils.formatdate(START + 120, usegmt=True)})
    with pytest.raises(QuotaExhausted) as info:
        await quota.before_request()
    assert info.value.retry_after == pytest.approx(120.0)


async def test_draft_ratelimit_headers_are_read(wall: WallClock) -> None:
    """The IETF draft RateLimit-Remaining/Reset headers define a one-off window."""
    quota = quota_for(wall)
    quota.record(200, {"RateLimit-Limit": "50", "RateLimit-Remaining": "0", "RateLimit-Reset": "7"})
    with pytest.raises(QuotaExhausted) as info:
        await quota.before_request()
    assert info.value.retry_after == pytest.approx(7.0)
    wall.now += 7
    assert quota.remaining() == {}
    await quota.before_request()


async def test_responses_without_headers_count_locally(wall: WallClock) -> None:
    """A response without quota headers still spends one request of each known window."""
    quota = quota_for(wall)
    quota.record(200, strava("10,1000", "3,3"))
    await quota.before_request()
    quota.record(200, {})
    assert quota.remaining()["15m"] == 6


async def test_configured_limits_hold_before_any_response(wall: WallClock) -> None:
    """limits= bounds a cold start: the 4th of 3 allowed calls is refused before any reply."""
    quota = UpstreamQuota("p", limits={"15m": 3, "daily": 100}, clock=wall, max_wait=0.0)
    for _ in range(3):
        await quota.before_request()
    with pytest.raises(QuotaExhausted) as refused:
        await quota.before_request()
    assert refused.value.window == "15m"
    # What the provider reports then replaces the configured numbers.
    quota.record(200, {"X-RateLimit-Limit": "5,100", "X-RateLimit-Usage": "3,3"})
    assert quota.remaining() == {"15m": 0, "daily": 95}


def test_configured_limits_are_checked() -> None:
    """An unknown window or a non-positive limit is a ValueError naming it."""
    with pytest.raises(ValueError, match="'hourly'"):
        UpstreamQuota("p", limits={"hourly": 5})
    with pytest.raises(ValueError, match="positive"):
        UpstreamQuota("p", limits={"15m": 0})
