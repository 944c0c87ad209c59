"""Map driver errors (asyncpg, sqlite3, SQLAlchemy) to ``tenfold._errors``.

    connection refused / lost, server shutting down  -> DatabaseUnavailable (503)
    pool checkout timeout, statement_timeout, command
    timeout, SQLite "database is locked"             -> QueryTimeout (503)
    unique, foreign key, exclusion violations        -> IntegrityConflict (409)
    a value that does not fit (SQLSTATE class 22:
    out of range, bad text representation, NUL or
    untranslatable character, too long; asyncpg's
    client-side DataError; sqlite3.DataError and
    OverflowError, "int too large for INTEGER")       -> InvalidData (422)
    anything else the database refused               -> DatabaseError (500)

The driver's exception is always kept as ``__cause__``. Errors that are not
database errors are returned as ``None`` so the caller re-raises them as they
are: nothing is swallowed and nothing foreign is relabelled.

Nothing here quotes a parameter: ``context`` gets the driver's class, the
SQLSTATE and the statement's text (placeholders, never values), and the
reason given for a refused value leaves the driver's message out, because
that message quotes the value.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator

import asyncpg
from asyncpg.exceptions._base import DataError as ClientDataError
from sqlalchemy import exc as sa_exc

from tenfold._errors import (
    DatabaseError,
    DatabaseUnavailable,
    IntegrityConflict,
    InvalidData,
    QueryTimeout,
    TenfoldError,
)

__all__ = ["describe", "is_bad_value", "is_connection_error", "map_error", "translate"]

# SQLSTATEs that mean "this connection or server is gone", not "your SQL is wrong".
_CONNECTION_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_CONFLICT_STATES = frozenset({"23505", "23503", "23P01"})
_TIMEOUT_STATES = frozenset({"57014", "55P03"})  # query_canceled, lock_not_available
_DATA_CLASS = "22"  # data_exception: the value, not the statement, is wrong
# asyncpg refuses a parameter it cannot encode (2**31 for an int4) before sending it,
# as a client-side DataError (not the server's class-22 one); sqlite3 raises
# OverflowError for an int beyond 64 bits, unwrapped by SQLAlchemy.
_BAD_VALUE_ERRORS = (ClientDataError, sqlite3.DataError, OverflowError)
_DRIVER_ERRORS = (asyncpg.PostgresError, ClientDataError, sqlite3.Error)
_ARGUMENT = re.compile(r"query argument \$\d+")
_STATEMENT_CHARS = 500


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wrapped, and what the adapter wrapped."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def _sqlstate(exc: BaseException) -> str | None:
    for link in _chain(exc):
        state = getattr(link, "sqlstate", None) or getattr(link, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def is_connection_error(exc: BaseException) -> bool:
    """True when the failure is the connection or server, so another server may succeed."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    for link in _chain(exc):
        if isinstance(link, sa_exc.DBAPIError) and link.connection_invalidated:
            return True
        # TimeoutError is an OSError, but a slow statement is not a lost connection.
        if isinstance(link, OSError) and not isinstance(link, TimeoutError):
            return True
        if isinstance(link, asyncpg.PostgresConnectionError):
            return True
        if isinstance(link, asyncpg.InterfaceError) and "closed" in str(link):
            return True
        if isinstance(link, sqlite3.OperationalError) and "unable to open" in str(link):
            return True
    state = _sqlstate(exc)
    return state is not None and (state.startswith("08") or state in _CONNECTION_STATES)


def _is_timeout(exc: BaseException) -> bool:
    for link in _chain(exc):
        if isinstance(link, (sa_exc.TimeoutError, TimeoutError, asyncio.TimeoutError)):
            return True
        if isinstance(link, sqlite3.OperationalError) and "locked" in str(link):
            return True
    return _sqlstate(exc) in _TIMEOUT_STATES


def _is_conflict(exc: BaseException) -> bool:
    if _sqlstate(exc) in _CONFLICT_STATES:
        return True
    for link in _chain(exc):
        if isinstance(link, sqlite3.IntegrityError):
            text = str(link)
            return text.startswith(("UNIQUE", "FOREIGN KEY", "PRIMARY KEY"))
    return False


def is_bad_value(exc: BaseException) -> bool:
    """True when the database refused a value (range, encoding, length, syntax of a literal)."""
    state = _sqlstate(exc)
    if state is not None and state.startswith(_DATA_CLASS):
        return True
    return any(isinstance(link, _BAD_VALUE_ERRORS) for link in _chain(exc))


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(
        exc,
        (
            sa_exc.SQLAlchemyError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            sqlite3.Error,
        ),
    )


def describe(exc: BaseException) -> str:
    """A short reason from the innermost driver error (never SQL parameters).

    For a refused value it is the driver's class, SQLSTATE and which argument:
    the message itself would quote the value.
    """
    links = list(_chain(exc))
    if is_bad_value(exc):
        return _bad_value_reason(exc, links)
    inner = links[-1]
    text = str(inner).splitlines()[0] if str(inner) else type(inner).__name__
    return f"{type(inner).__name__}: {text}"[:300]


def _bad_value_reason(exc: BaseException, links: list[BaseException]) -> str:
    driver = next((link for link in links if isinstance(link, _DRIVER_ERRORS)), links[-1])
    parts = [type(driver).__name__]
    state = _sqlstate(exc)
    if state is not None:
        parts.append(f"SQLSTATE {state}")
    if isinstance(driver, ClientDataError):
        argument = _ARGUMENT.search(str(driver))
        if argument is not None:
            parts.append(argument.group())
    return ", ".join(parts)


def _statement(exc: BaseException) -> str | None:
    """The SQL text of the failed statement: placeholders, never the bound values."""
    for link in _chain(exc):
        statement = getattr(link, "statement", None)
        if isinstance(link, sa_exc.StatementError) and isinstance(statement, str):
            return " ".join(statement.split())[:_STATEMENT_CHARS]
    return None


def map_error(
    exc: BaseException,
    *,
    role: str = "primary",
    driver_only: bool = False,
    connecting: bool = False,
) -> TenfoldError | None:
    """The tenfold error for a driver exception, or ``None`` if it is not one.

    ``driver_only`` limits mapping to exceptions that can only come from a
    driver; bare ``OSError``/``TimeoutError``/``OverflowError`` are then left
    alone, because around user code they may be the user's own. ``connecting``
    says the error happened while getting a connection: anything but a pool
    timeout then means the server is unavailable.
    """
    if isinstance(exc, TenfoldError):
        return exc
    if not _is_database_error(exc) and (
        driver_only
        or not isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError, OverflowError))
    ):
        return None
    mapped = _classify(exc, role, connecting=connecting)
    # Clients see the message (503/409/422 details are exposed); the driver's words,
    # which can name hosts, constraints or SQL, stay in context and __cause__ for logs.
    mapped.context.setdefault("reason", describe(exc))
    state = _sqlstate(exc)
    if state is not None:
        mapped.context.setdefault("sqlstate", state)
    statement = _statement(exc)
    if statement is not None:
        mapped.context.setdefault("statement", statement)
    return mapped


def _classify(exc: BaseException, role: str, *, connecting: bool) -> TenfoldError:
    if isinstance(exc, sa_exc.TimeoutError):
        return QueryTimeout(f"no {role} database connection was free within the pool timeout")
    if connecting or is_connection_error(exc):
        return DatabaseUnavailable(f"the {role} database is unavailable", role=role)
    if _is_timeout(exc):
        return QueryTimeout(f"the statement timed out on the {role} database")
    if _is_conflict(exc):
        return IntegrityConflict("the change conflicts with existing data")
    if is_bad_value(exc):
        return InvalidData(
            "a value does not fit its database column "
            "(out of range, too long, or not valid for the column's type)"
        )
    return DatabaseError(f"the {role} database refused the statement: {describe(exc)}")


class translate:
    """``async with translate(role):`` re-raises driver errors as tenfold errors."""

    __slots__ = ("connecting", "driver_only", "role")

    def __init__(
        self, role: str = "primary", *, driver_only: bool = False, connecting: bool = False
    ) -> None:
        self.role = role
        self.driver_only = driver_only
        self.connecting = connecting

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, TenfoldError):
            return
        mapped = map_error(
            exc, role=self.role, driver_only=self.driver_only, connecting=self.connecting
        )
        if mapped is not None:
            raise mapped from exc
