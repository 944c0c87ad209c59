"""Errors of the cache, and how a client sees them (``PROBLEMS``).

    TenfoldError
    ├── DependencyUnavailable
    │   └── CacheUnavailable          Redis cannot be reached, timed out or refused a command
    └── CacheSerializationError       a value could not be encoded, or stored bytes decoded

``CacheUnavailable`` is what the cache degrades on (L1 plus the loader); a
``CacheSerializationError`` on read means the stored entry is unusable and
should be treated as a miss.
"""

from __future__ import annotations

from collections.abc import Mapping

from tenfold._errors import DependencyUnavailable, TenfoldError
from tenfold.web import Problem, ProblemEntry, retry_after_header

__all__ = ["PROBLEMS", "CacheSerializationError", "CacheUnavailable"]


class CacheUnavailable(DependencyUnavailable):
    """The cache's backing store (Redis) failed; the driver's error is ``__cause__``."""

    def __init__(
        self, message: str = "", *, dependency: str = "redis", retry_after: float | None = None
    ) -> None:
        super().__init__(message, dependency=dependency, retry_after=retry_after)


class CacheSerializationError(TenfoldError):
    """A value could not be serialized, or stored bytes could not be read back."""


_T = "https://tenfold.dev/problems/"

#: The cache's errors as problem+json (``tenfold.web.ProblemRegistry`` table).
PROBLEMS: Mapping[type[TenfoldError], ProblemEntry] = {
    CacheUnavailable: Problem(
        503,
        "Service Unavailable",
        type=_T + "cache-unavailable",
        detail="The cache is unavailable. Retry shortly.",
        headers=retry_after_header(),
    ),
    CacheSerializationError: Problem(
        500,
        "Internal Server Error",
        type=_T + "cache-serialization",
        expose_detail=False,
    ),
}
