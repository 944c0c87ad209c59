"""An upstream's rate limits, learned from its response headers.

``UpstreamQuota`` reads three header families:

- Strava style ``X-RateLimit-Limit: 100,1000`` / ``X-RateLimit-Usage: 37,412``:
  a 15-minute and a daily window that reset at the natural boundaries (every
  quarter hour and at UTC midnight);
- the IETF draft ``RateLimit-Limit`` / ``RateLimit-Remaining`` /
  ``RateLimit-Reset`` (delta seconds);
- ``Retry-After`` (seconds or an HTTP date) on a 429 or 503.

``before_request()`` is awaited before each send: it returns when the request
fits, sleeps when the wait is at most ``max_wait``, and otherwise raises
``QuotaExhausted`` so the request is never sent. Requests in flight count
against the quota, so concurrent callers cannot overshoot it together.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tenfold.resilience._errors import QuotaExhausted

__all__ = ["QuotaTracker", "UpstreamQuota"]

_STRAVA_PERIODS = (("15m", 900.0), ("daily", 86400.0))
#: The windows a quota's ``limits`` may name: a quarter hour and a UTC day.
PERIODS = dict(_STRAVA_PERIODS)


def check_limits(limits: Mapping[str, int] | None) -> dict[str, int]:
    """``limits`` validated: known window names, positive counts (a ValueError otherwise)."""
    found = dict(limits or {})
    for name, limit in found.items():
        if name not in PERIODS:
            raise ValueError(f"unknown quota window {name!r}; use {sorted(PERIODS)}")
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"quota window {name!r} needs a positive limit, got {limit!r}")
    return found


@runtime_checkable
class QuotaTracker(Protocol):
    """What ``ExternalClient`` needs from a quota: ``UpstreamQuota`` (this process) or
    ``RedisUpstreamQuota`` (every instance), which also has an awaitable ``arecord``."""

    provider: str

    async def before_request(self) -> None: ...

    def record(self, status_code: int | None, headers: Mapping[str, str] | None) -> None: ...

    def remaining(self) -> dict[str, int]: ...


@dataclass(slots=True)
class _Window:
    limit: int
    used: int
    resets_at: float
    period: float | None = None  # natural-boundary period; None for a one-off window


class UpstreamQuota:
    """Tracks one provider's quota; ``await quota.before_request()`` then ``record``.

    ``limits`` are the quota known before any response (``{"15m": 100,
    "daily": 1000}``, Strava's windows), so a cold start cannot burst past it;
    what the provider then reports replaces them. ``clock`` is the wall clock
    (epoch seconds, since windows reset at UTC boundaries) and ``sleep`` the
    wait; both are injected for tests.
    """

    def __init__(
        self,
        provider: str,
        *,
        limits: Mapping[str, int] | None = None,
        max_wait: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._windows: dict[str, _Window] = {}
        now = clock()
        for name, limit in check_limits(limits).items():
            period = PERIODS[name]
            self._windows[name] = _Window(limit, 0, _next_boundary(now, period), period)
        self._blocked_until = 0.0
        self.in_flight = 0

    def __repr__(self) -> str:
        return f"UpstreamQuota({self.provider!r}, remaining={self.remaining()})"

    def remaining(self) -> dict[str, int]:
        """Requests left per known window, with those in flight already spent."""
        self._roll(self._clock())
        return {
            name: max(0, w.limit - w.used - self.in_flight) for name, w in self._windows.items()
        }

    async def before_request(self) -> None:
        """Reserve one request, waiting up to ``max_wait``; else raise ``QuotaExhausted``."""
        while True:
            window, wait = self._wait_needed()
            if wait <= 0:
                self.in_flight += 1
                return
            if wait > self.max_wait:
                raise QuotaExhausted(self.provider, window=window, retry_after=wait)
            await self._sleep(wait)

    def record(self, status_code: int | None, headers: Mapping[str, str] | None) -> None:
        """Release the reservation and learn from the response (None: nothing came back)."""
        self.in_flight = max(0, self.in_flight - 1)
        now = self._clock()
        self._roll(now)
        if headers is None:
            return
        headers = {key.lower(): value for key, value in headers.items()}
        learned = self._read_strava(headers, now) | self._read_draft(headers, now)
        if status_code is not None:
            for window in self._windows.values() if not learned else ():
                window.used += 1
            if status_code in (429, 503):
                retry_after = parse_retry_after(headers.get("retry-after"), now)
                if retry_after is not None:
                    self._blocked_until = max(self._blocked_until, now + retry_after)

    def _wait_needed(self) -> tuple[str, float]:
        now = self._clock()
        self._roll(now)
        if self._blocked_until > now:
            return "retry-after", self._blocked_until - now
        waits = [
            (name, w.resets_at - now)
            for name, w in self._windows.items()
            if w.used + self.in_flight >= w.limit
        ]
        return max(waits, key=lambda item: item[1], default=("", 0.0))

    def _roll(self, now: float) -> None:
        for name, window in list(self._windows.items()):
            if now < window.resets_at:
                continue
            if window.period is None:
                del self._windows[name]
            else:
                window.used = 0
                window.resets_at = _next_boundary(now, window.period)

    def _read_strava(self, headers: Mapping[str, str], now: float) -> bool:
        limits = _ints(headers.get("x-ratelimit-limit"))
        usages = _ints(headers.get("x-ratelimit-usage"))
        if not limits or len(limits) != len(usages):
            return False
        for (name, period), limit, used in zip(_STRAVA_PERIODS, limits, usages, strict=False):
            resets_at = _next_boundary(now, period)
            known = self._windows.get(name)
            # Responses can arrive out of order; within one window usage only grows.
            if known is not None and known.resets_at == resets_at:
                used = max(used, known.used)
            self._windows[name] = _Window(limit, used, resets_at, period)
        return True

    def _read_draft(self, headers: Mapping[str, str], now: float) -> bool:
        remaining = _ints(headers.get("ratelimit-remaining"))
        reset = _ints(headers.get("ratelimit-reset"))
        if not remaining or not reset:
            return False
        limit = (_ints(headers.get("ratelimit-limit")) or [remaining[0]])[0]
        used = max(0, limit - remaining[0])
        self._windows["ratelimit"] = _Window(limit, used, now + reset[0])
        return True


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _next_boundary(now: float, period: float) -> float:
    # Epoch seconds are UTC, so multiples of 86400 are UTC midnights.
    return (now // period + 1) * period


def _ints(value: str | None) -> list[int]:
    if not value:
        return []
    try:
        return [int(part.strip()) for part in value.split(",")]
    except ValueError:
        return []
