"""The tenfold exception tree.

Every error tenfold raises on purpose is a ``TenfoldError``. Driver errors
(asyncpg, sqlite3, redis-py) are mapped to the most specific class below with
``raise ... from exc``; callers never need to catch a driver's exception.

    TenfoldError
    ├── ConfigurationError          a setting is missing or invalid (names it)
    ├── DependencyUnavailable       a backing service cannot be reached  -> 503
    │   └── DatabaseUnavailable     no connection to the database could be had
    ├── DatabaseError               the database refused a statement
    │   ├── IntegrityConflict       a constraint was violated             -> 409
    │   └── QueryTimeout            statement_timeout or pool timeout hit -> 503
    ├── ShuttingDown                the process is draining               -> 503
    └── ProblemError                an HTTP-facing error with a status
        ├── BadRequest                                                    -> 400
        │   └── InvalidCursor       a pagination cursor failed its check  -> 400
        ├── NotFound                                                      -> 404
        └── Conflict                                                      -> 409

Each class carries the HTTP status and the RFC 9457 ``type`` / ``title`` that
the problem+json handler renders, so the mapping lives with the error.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "DatabaseError",
    "DatabaseUnavailable",
    "DependencyUnavailable",
    "IntegrityConflict",
    "InvalidCursor",
    "NotFound",
    "ProblemError",
    "QueryTimeout",
    "ShuttingDown",
    "TenfoldError",
]

_TYPE_BASE = "https://tenfold.dev/problems/"


class TenfoldError(Exception):
    """Root of every error tenfold raises on purpose."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    slug: ClassVar[str] = "internal"
    #: Whether ``str(exc)`` is safe to show to a client. Internal errors are not.
    expose_detail: ClassVar[bool] = False

    def __init__(self, message: str = "", **context: Any) -> None:
        super().__init__(message or self.title)
        self.message = message or self.title
        self.context = context

    @property
    def type_uri(self) -> str:
        return _TYPE_BASE + self.slug

    def problem_extensions(self) -> dict[str, Any]:
        """Extra members for the problem+json body (never secrets)."""
        return {}

    def response_headers(self) -> dict[str, str]:
        return {}


class ConfigurationError(TenfoldError):
    """A setting is missing or invalid. ``setting`` is the environment variable."""

    slug = "configuration"

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message, setting=setting)
        self.setting = setting


class DependencyUnavailable(TenfoldError):
    """A backing service (database, Redis, broker) cannot be reached right now."""

    status_code = 503
    title = "Service Unavailable"
    slug = "dependency-unavailable"
    expose_detail = True

    def __init__(
        self, message: str = "", *, dependency: str = "", retry_after: float | None = 1.0
    ) -> None:
        super().__init__(message or f"{dependency or 'a dependency'} is unavailable")
        self.dependency = dependency
        self.retry_after = retry_after

    def response_headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class DatabaseUnavailable(DependencyUnavailable):
    slug = "database-unavailable"

    def __init__(self, message: str = "", *, role: str = "primary", retry_after: float = 1.0):
        super().__init__(
            message or f"the {role} database is unavailable",
            dependency=f"database:{role}",
            retry_after=retry_after,
        )
        self.role = role


class DatabaseError(TenfoldError):
    """The database refused a statement. The driver's error is ``__cause__``."""

    slug = "database-error"


class IntegrityConflict(DatabaseError):
    status_code = 409
    title = "Conflict"
    slug = "integrity-conflict"
    expose_detail = True


class QueryTimeout(DatabaseError):
    status_code = 503
    title = "Service Unavailable"
    slug = "query-timeout"
    expose_detail = True

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class ShuttingDown(TenfoldError):
    status_code = 503
    title = "Service Unavailable"
    slug = "shutting-down"
    expose_detail = True

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": "1", "Connection": "close"}


class ProblemError(TenfoldError):
    """Raise from application code to answer with a problem+json response."""

    expose_detail = True

    def __init__(self, detail: str = "", **extensions: Any) -> None:
        super().__init__(detail or self.title)
        self.extensions = extensions

    def problem_extensions(self) -> dict[str, Any]:
        return dict(self.extensions)


class BadRequest(ProblemError):
    status_code = 400
    title = "Bad Request"
    slug = "bad-request"


class InvalidCursor(BadRequest):
    title = "Invalid Cursor"
    slug = "invalid-cursor"


class NotFound(ProblemError):
    status_code = 404
    title = "Not Found"
    slug = "not-found"


class Conflict(ProblemError):
    status_code = 409
    title = "Conflict"
    slug = "conflict"
