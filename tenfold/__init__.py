"""tenfold: a service platform for web applications that must survive ten times their traffic.

The top-level package is the kernel's public surface: the platform and its
extensions, settings, the context that travels with work, the error tree,
``Backoff`` (the one formula for waiting before trying again) and the FastAPI
adapter. Each capability has its own sub-package (``tenfold.db``,
``tenfold.cache``, ``tenfold.httpcache``, ``tenfold.ratelimit``,
``tenfold.idempotency``, ``tenfold.resilience``, ``tenfold.health``,
``tenfold.jobs``, ``tenfold.events``, ``tenfold.realtime``,
``tenfold.observability``, ``tenfold.web``, ``tenfold.testing``).
"""

from typing import TYPE_CHECKING, Any

from tenfold._backoff import Backoff
from tenfold._components import Component, ComponentGroup
from tenfold._context import (
    ContextSnapshot,
    Principal,
    current_causation_id,
    current_consistency_token,
    current_correlation_id,
    current_principal,
    current_request_id,
    current_traceparent,
    current_user_id,
    restore,
    set_principal,
    snapshot,
)
from tenfold._errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    DependencyUnavailable,
    Forbidden,
    IntegrityConflict,
    InvalidCursor,
    InvalidData,
    NotFound,
    ProblemError,
    QueryTimeout,
    ShuttingDown,
    TenfoldError,
    Unauthorized,
)
from tenfold._settings import (
    AppSettings,
    CoreSettings,
    HealthSettings,
    HttpSettings,
    ObservabilitySettings,
    RedisSettings,
    SettingsSection,
)

if TYPE_CHECKING:
    from tenfold._app import create_app
    from tenfold._builtins import Settings
    from tenfold._extension import Build, Extension
    from tenfold._platform import Platform, PlatformDep, Use, get_platform, platform_of
    from tenfold.cache import CacheSettings
    from tenfold.db import DatabaseSettings, ShardSettings
    from tenfold.idempotency import IdempotencySettings
    from tenfold.ratelimit import RateLimitSettings
    from tenfold.resilience import UpstreamPolicy, UpstreamSettings
    from tenfold.web import Slot

__version__ = "0.1.0"

# Loaded on first use: the platform, the adapter and the built-in settings import every
# capability (SQLAlchemy, redis-py, FastAPI...), and every capability imports this package's
# kernel modules; loading them lazily keeps that from being a cycle and `import tenfold` light.
_LAZY = {
    "create_app": "tenfold._app",
    "Settings": "tenfold._builtins",
    "Build": "tenfold._extension",
    "Extension": "tenfold._extension",
    "Platform": "tenfold._platform",
    "PlatformDep": "tenfold._platform",
    "Use": "tenfold._platform",
    "get_platform": "tenfold._platform",
    "platform_of": "tenfold._platform",
    "Slot": "tenfold.web",
    "CacheSettings": "tenfold.cache",
    "DatabaseSettings": "tenfold.db",
    "ShardSettings": "tenfold.db",
    "IdempotencySettings": "tenfold.idempotency",
    "RateLimitSettings": "tenfold.ratelimit",
    "UpstreamPolicy": "tenfold.resilience",
    "UpstreamSettings": "tenfold.resilience",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tenfold' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AppSettings",
    "Backoff",
    "BadRequest",
    "Build",
    "CacheSettings",
    "Component",
    "ComponentGroup",
    "ConfigurationError",
    "Conflict",
    "ContextSnapshot",
    "CoreSettings",
    "DatabaseError",
    "DatabaseSettings",
    "DatabaseUnavailable",
    "DependencyUnavailable",
    "Extension",
    "Forbidden",
    "HealthSettings",
    "HttpSettings",
    "IdempotencySettings",
    "IntegrityConflict",
    "InvalidCursor",
    "InvalidData",
    "NotFound",
    "ObservabilitySettings",
    "Platform",
    "PlatformDep",
    "Principal",
    "ProblemError",
    "QueryTimeout",
    "RateLimitSettings",
    "RedisSettings",
    "Settings",
    "SettingsSection",
    "ShardSettings",
    "ShuttingDown",
    "Slot",
    "TenfoldError",
    "Unauthorized",
    "UpstreamPolicy",
    "UpstreamSettings",
    "Use",
    "__version__",
    "create_app",
    "current_causation_id",
    "current_consistency_token",
    "current_correlation_id",
    "current_principal",
    "current_request_id",
    "current_traceparent",
    "current_user_id",
    "get_platform",
    "platform_of",
    "restore",
    "set_principal",
    "snapshot",
]
