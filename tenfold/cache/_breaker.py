"""A small circuit breaker around the cache's Redis calls.

Closed: calls go through; ``failures`` consecutive failures open it. Open:
calls are refused at once (the cache falls back to L1 + loader, and a dead
Redis costs nothing per request). After ``reset_after`` seconds it is
half-open: ONE trial call goes through; success closes it, failure re-opens
it for another ``reset_after``. A trial whose caller never reports (cancelled)
counts as failed after ``reset_after``, so the breaker can never stick.

Issue 4 builds the full resilience package; this one only needs to be cheap
on the hot path (``allow()`` is two attribute reads when closed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Breaker"]


class Breaker:
    """Consecutive-failure breaker with a single half-open trial."""

    def __init__(
        self,
        *,
        failures: int = 5,
        reset_after: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.failures = failures
        self.reset_after = reset_after
        self._clock = clock
        self._on_close = on_close
        self._count = 0
        self._open = False
        self._retry_at = 0.0  # when open: the earliest time for the next trial
        #: Times the breaker opened (for metrics).
        self.opened = 0

    def __repr__(self) -> str:
        return f"<Breaker {self.state} failures={self._count}/{self.failures}>"

    @property
    def state(self) -> str:
        if not self._open:
            return "closed"
        return "half-open" if self._clock() >= self._retry_at else "open"

    @property
    def is_open(self) -> bool:
        return self._open

    def allow(self) -> bool:
        """True if a call may go to Redis now (a half-open trial reserves the slot)."""
        if not self._open:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.reset_after  # one trial per reset_after
        return True

    def success(self) -> None:
        self._count = 0
        if self._open:
            self._open = False
            if self._on_close is not None:
                self._on_close()

    def failure(self) -> None:
        self._count += 1
        if self._open:
            self._retry_at = self._clock() + self.reset_after
        elif self._count >= self.failures:
            self._open = True
            self.opened += 1
            self._retry_at = self._clock() + self.reset_after
