"""tenfold: a service platform for web applications that must survive ten times their traffic.

The public surface of the top-level package is small: settings, the app
factory, the component protocol, the request context, the error tree and
``Backoff``, the one formula for waiting before trying again.
Each capability has its own sub-package (``tenfold.db``, ``tenfold.health``,
``tenfold.observability``, ``tenfold.web``, ``tenfold.testing``).
"""

from typing import TYPE_CHECKING, Any

from tenfold._backoff import Backoff
from tenfold._components import Component, ComponentGroup
from tenfold._context import (
    RequestContext,
    current_consistency_token,
    current_request_id,
    current_user_id,
    set_user_id,
)
from tenfold._errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    DependencyUnavailable,
    IntegrityConflict,
    InvalidCursor,
    NotFound,
    ProblemError,
    QueryTimeout,
    ShuttingDown,
    TenfoldError,
)
from tenfold._settings import (
    AppSettings,
    DatabaseSettings,
    HealthSettings,
    IdempotencySettings,
    ObservabilitySettings,
    RateLimitSettings,
    RedisSettings,
    Settings,
    ShardSettings,
    UpstreamPolicy,
    UpstreamSettings,
)

if TYPE_CHECKING:
    from tenfold._app import Platform, PlatformDep, create_app, get_platform

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The app factory imports every capability, and every capability imports
    # tenfold._errors; loading it lazily keeps that from being a cycle and keeps
    # `import tenfold.testing` light.
    if name in ("create_app", "get_platform", "Platform", "PlatformDep"):
        from tenfold import _app

        return getattr(_app, name)
    raise AttributeError(f"module 'tenfold' has no attribute {name!r}")


__all__ = [
    "AppSettings",
    "Backoff",
    "BadRequest",
    "Component",
    "ComponentGroup",
    "ConfigurationError",
    "Conflict",
    "DatabaseError",
    "DatabaseSettings",
    "DatabaseUnavailable",
    "DependencyUnavailable",
    "HealthSettings",
    "IdempotencySettings",
    "IntegrityConflict",
    "InvalidCursor",
    "NotFound",
    "ObservabilitySettings",
    "Platform",
    "PlatformDep",
    "ProblemError",
    "QueryTimeout",
    "RateLimitSettings",
    "RedisSettings",
    "RequestContext",
    "Settings",
    "ShardSettings",
    "ShuttingDown",
    "TenfoldError",
    "UpstreamPolicy",
    "UpstreamSettings",
    "__version__",
    "create_app",
    "current_consistency_token",
    "current_request_id",
    "current_user_id",
    "get_platform",
    "set_user_id",
]
