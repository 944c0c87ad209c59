"""The tenfold exception tree.

Every error tenfold raises on purpose is a ``TenfoldError``. Driver errors
(asyncpg, sqlite3, redis-py) are mapped to the most specific class below with
``raise ... from exc``; callers never need to catch a driver's exception.

    TenfoldError
    ├── ConfigurationError          a setting is missing or invalid (names it)
    ├── DependencyUnavailable       a backing service cannot be reached
    │   └── DatabaseUnavailable     no connection to the database could be had
    ├── DatabaseError               the database refused a statement
    │   ├── IntegrityConflict       a constraint was violated
    │   ├── InvalidData             a value does not fit its column (range, encoding)
    │   └── QueryTimeout            statement_timeout or pool timeout hit
    ├── ShuttingDown                the process is draining
    └── ProblemError                raised by application code to answer a request
        ├── BadRequest
        │   └── InvalidCursor       a pagination cursor failed its check
        ├── NotFound
        └── Conflict

Errors carry domain context only (``dependency``, ``retry_after``,
``setting``...). What a client sees for each class (status, title, problem
type, headers) is decided by ``tenfold.web.ProblemRegistry``, not here: the
same errors are raised in workers and CLIs, where HTTP means nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "DatabaseError",
    "DatabaseUnavailable",
    "DependencyUnavailable",
    "IntegrityConflict",
    "InvalidCursor",
    "InvalidData",
    "NotFound",
    "ProblemError",
    "QueryTimeout",
    "ShuttingDown",
    "TenfoldError",
]


class TenfoldError(Exception):
    """Root of every error tenfold raises on purpose. ``context`` holds details for logs."""

    def __init__(self, message: str = "", **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class ConfigurationError(TenfoldError):
    """A setting is missing or invalid. ``setting`` is the environment variable."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message, setting=setting)
        self.setting = setting


class DependencyUnavailable(TenfoldError):
    """A backing service (database, Redis, broker) cannot be reached right now.

    ``retry_after`` is a measured hint in seconds (a breaker's time to
    half-open, a quota's reset, an upstream's ``Retry-After``), or None when
    nobody knows; it is never a made-up default.
    """

    def __init__(
        self, message: str = "", *, dependency: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message or f"{dependency or 'a dependency'} is unavailable")
        self.dependency = dependency
        self.retry_after = retry_after


class DatabaseUnavailable(DependencyUnavailable):
    """No connection to the ``role`` database could be had."""

    def __init__(
        self, message: str = "", *, role: str = "primary", retry_after: float | None = None
    ) -> None:
        super().__init__(
            message or f"the {role} database is unavailable",
            dependency=f"database:{role}",
            retry_after=retry_after,
        )
        self.role = role


class DatabaseError(TenfoldError):
    """The database refused a statement. The driver's error is ``__cause__``."""


class IntegrityConflict(DatabaseError):
    """A unique, foreign key or exclusion constraint was violated."""


class InvalidData(DatabaseError):
    """The database refused a value: out of its column's range, not valid text
    (a NUL character), too long, or not parseable as the column's type.

    The value came from somewhere (usually the request), so this is the
    client's error, not the server's. The message never quotes the value;
    ``context`` holds the driver's class and SQLSTATE for logs.
    """


class QueryTimeout(DatabaseError):
    """A statement or a pool checkout took longer than its timeout."""


class ShuttingDown(TenfoldError):
    """The process is draining and takes no new work."""


class ProblemError(TenfoldError):
    """Raise from application code to answer with a problem+json response.

    ``detail`` is shown to the client; ``extensions`` become extra members of
    the problem body (never put secrets there).
    """

    def __init__(self, detail: str = "", **extensions: Any) -> None:
        super().__init__(detail)
        self.extensions = extensions


class BadRequest(ProblemError):
    """The request is wrong in a way the client can fix."""


class InvalidCursor(BadRequest):
    """A pagination cursor failed its integrity check or does not fit the listing."""


class Unauthorized(ProblemError):
    """The request carries no valid credentials (401, with ``WWW-Authenticate``).

    ``challenge`` is the header's value (``Bearer`` by default; with an
    ``error="invalid_token"`` parameter when a token was sent but refused).
    """

    def __init__(self, detail: str = "", *, challenge: str = "Bearer", **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.challenge = challenge


class Forbidden(ProblemError):
    """The caller is known but may not do this (403). Where the object's existence must
    not leak, answer ``NotFound`` instead."""


class NotFound(ProblemError):
    """What the request names does not exist."""


class Conflict(ProblemError):
    """The request conflicts with the current state of what it names."""
