"""Errors of the rate limiter, and how a client sees them (``PROBLEMS``).

    TenfoldError
    ├── DependencyUnavailable
    │   └── RateLimiterUnavailable    Redis cannot be reached, timed out or refused a command
    └── ProblemError
        └── RateLimited               a rule refused the request

``RateLimited`` carries the numbers a client needs (``retry_after``, ``limit``,
``remaining``, ``reset``); its problem is a 429 with ``Retry-After`` in whole
seconds, rounded up, and the body members ``retry_after`` and ``limit``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tenfold._errors import DependencyUnavailable, ProblemError, TenfoldError
from tenfold.web import Problem, ProblemEntry, retry_after_header

if TYPE_CHECKING:
    from tenfold.ratelimit._gcra import Decision

__all__ = ["PROBLEMS", "RateLimited", "RateLimiterUnavailable"]


class RateLimited(ProblemError):
    """A rate limit refused the request; retry after ``retry_after`` seconds."""

    def __init__(
        self,
        detail: str = "",
        *,
        retry_after: float,
        limit: int,
        remaining: int = 0,
        reset: float = 0.0,
    ) -> None:
        super().__init__(detail or "rate limit exceeded")
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


class RateLimiterUnavailable(DependencyUnavailable):
    """The limiter's store (Redis) failed; the driver's error is ``__cause__``."""

    def __init__(
        self, message: str = "", *, dependency: str = "redis", retry_after: float | None = None
    ) -> None:
        super().__init__(message, dependency=dependency, retry_after=retry_after)


def _seconds(delay: float) -> int:
    # Retry-After is whole seconds; rounding down would invite a retry that is refused again.
    return max(1, math.ceil(delay))


def _retry_after(exc: RateLimited) -> dict[str, str]:
    return {"Retry-After": str(_seconds(exc.retry_after))}


def _members(exc: RateLimited) -> dict[str, Any]:
    return {"retry_after": _seconds(exc.retry_after), "limit": exc.limit}


_T = "https://tenfold.dev/problems/"

#: The rate limiter's errors as problem+json (``tenfold.web.ProblemRegistry`` table).
PROBLEMS: Mapping[type[TenfoldError], ProblemEntry] = {
    RateLimited: Problem(
        429,
        "Too Many Requests",
        type=_T + "rate-limited",
        headers=_retry_after,
        extensions=_members,
    ),
    RateLimiterUnavailable: Problem(
        503,
        "Service Unavailable",
        type=_T + "rate-limiter-unavailable",
        detail="The rate limiter is unavailable. Retry shortly.",
        headers=retry_after_header(),
    ),
}
