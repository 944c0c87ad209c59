"""The extensions a platform has unless told otherwise, and the settings they compose.

This is a list, not a composition root: each capability is built by its own
extension, and an application adds or replaces extensions through
``Platform.build(extensions=...)`` / ``create_app(extensions=...)`` without
touching it.
"""

from __future__ import annotations

from tenfold._extension import Extension
from tenfold._settings import CoreSettings
from tenfold.cache import CacheExtension
from tenfold.db import DatabaseExtension
from tenfold.httpcache import HttpCacheExtension
from tenfold.idempotency import IdempotencyExtension
from tenfold.ratelimit import RateLimitExtension
from tenfold.resilience import UpstreamExtension

__all__ = ["BUILTIN_EXTENSIONS", "Settings", "builtin_extensions"]

#: The built-in extension classes, in their start order.
BUILTIN_EXTENSIONS: tuple[type[Extension], ...] = (
    DatabaseExtension,
    CacheExtension,
    HttpCacheExtension,
    RateLimitExtension,
    IdempotencyExtension,
    UpstreamExtension,
)


def builtin_extensions() -> list[Extension]:
    """A fresh instance of each built-in extension."""
    return [cls() for cls in BUILTIN_EXTENSIONS]


#: The settings of a platform with the built-in extensions (``tenfold.Settings``).
Settings = CoreSettings.compose(
    (cls.name, cls.settings_model) for cls in BUILTIN_EXTENSIONS if cls.settings_model is not None
)
