"""Errors of the rate limiter.

    TenfoldError
    ├── DependencyUnavailable
    │   └── RateLimiterUnavailable    Redis cannot be reached, timed out or refused a command
    └── ProblemError
        └── RateLimited               a rule refused the request                  -> 429

``RateLimited`` carries the numbers a client needs (``retry_after``, ``limit``,
``remaining``, ``reset``); its ``response_headers()`` give ``Retry-After``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tenfold._errors import DependencyUnavailable, ProblemError

if TYPE_CHECKING:
    from tenfold.ratelimit._gcra import Decision

__all__ = ["RateLimited", "RateLimiterUnavailable"]


class RateLimited(ProblemError):
    """A rate limit refused the request; retry after ``retry_after`` seconds."""

    status_code = 429
    title = "Too Many Requests"
    slug = "rate-limited"

    def __init__(
        self,
        detail: str = "",
        *,
        retry_after: float,
        limit: int,
        remaining: int = 0,
        reset: float = 0.0,
    ) -> None:
        super().__init__(detail or "rate limit exceeded", retry_after=_seconds(retry_after))
        self.retry_after = retry_after
        self.limit = limit
        self.remaining = remaining
        self.reset = reset

    @classmethod
    def from_decision(cls, decision: Decision, detail: str = "") -> RateLimited:
        """The error for a refused ``decision``."""
        return cls(
            detail,
            retry_after=decision.retry_after,
            limit=decision.limit,
            remaining=decision.remaining,
            reset=decision.reset_after,
        )

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(_seconds(self.retry_after))}

    def problem_extensions(self) -> dict[str, Any]:
        return {**super().problem_extensions(), "limit": self.limit}


class RateLimiterUnavailable(DependencyUnavailable):
    """The limiter's store (Redis) failed; the driver's error is ``__cause__``."""

    slug = "rate-limiter-unavailable"

    def __init__(
        self, message: str = "", *, dependency: str = "redis", retry_after: float | None = 1.0
    ) -> None:
        super().__init__(message, dependency=dependency, retry_after=retry_after)


def _seconds(delay: float) -> int:
    # Retry-After is whole seconds; rounding down would invite a retry that is refused again.
    return max(1, math.ceil(delay))
