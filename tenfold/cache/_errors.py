"""Errors of the cache.

    TenfoldError
    ├── DependencyUnavailable
    │   └── CacheUnavailable          Redis cannot be reached, timed out or refused a command
    └── CacheSerializationError       a value could not be encoded, or stored bytes decoded

``CacheUnavailable`` is what the cache degrades on (L1 plus the loader); a
``CacheSerializationError`` on read means the stored entry is unusable and
should be treated as a miss.
"""

from __future__ import annotations

from tenfold._errors import DependencyUnavailable, TenfoldError

__all__ = ["CacheSerializationError", "CacheUnavailable"]


class CacheUnavailable(DependencyUnavailable):
    """The cache's backing store (Redis) failed; the driver's error is ``__cause__``."""

    slug = "cache-unavailable"

    def __init__(
        self, message: str = "", *, dependency: str = "redis", retry_after: float | None = 1.0
    ) -> None:
        super().__init__(message, dependency=dependency, retry_after=retry_after)


class CacheSerializationError(TenfoldError):
    """A value could not be serialized, or stored bytes could not be read back."""

    slug = "cache-serialization"
