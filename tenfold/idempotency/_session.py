"""``IdempotentSession``: a write session that reserves the key and stores the response.

The whole exchange is one transaction on the primary::

    lock the key      pg_try_advisory_xact_lock(scope, key); taken -> 409
                      (SQLite: BEGIN IMMEDIATE already serialises writers)
    look it up        stored + same fingerprint -> replay, stored + other -> 422
    run the handler   its writes go through the yielded session
    store the result  INSERT the response IdempotentRoute captured
    commit            the handler's writes and the stored response, together

A crash anywhere before the commit rolls back the handler's writes, the
stored response and (with the connection) the lock, so a retry runs the
handler once more from scratch; a crash after it finds the response stored.
``IdempotentRoute`` is what makes the capture possible: FastAPI closes
``scope="function"`` dependencies after the route handler has built the
``Response`` and before it is sent, and the route hands that ``Response`` to
the dependency.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from tenfold._errors import ConfigurationError, TenfoldError
from tenfold.db import TenfoldSession, get_database
from tenfold.idempotency._errors import (
    IdempotencyKeyInFlight,
    IdempotencyKeyMismatch,
    IdempotencyKeyMissing,
    IdempotencyScopeMissing,
)
from tenfold.idempotency._response import StoredResponse, fingerprint, scope_of
from tenfold.idempotency._table import idempotency_table as _table

__all__ = ["IdempotencyConfig", "IdempotentRoute", "IdempotentSession", "idempotent_session"]

_SLOT = "tenfold.idempotency"


@dataclass(frozen=True, slots=True)
class IdempotencyConfig:
    """How a route reads and keeps idempotency keys."""

    #: The request header that carries the key (IETF draft and Stripe name).
    header: str = "Idempotency-Key"
    #: Whether a POST/PATCH without a key is refused (400) or simply run.
    required: bool = True
    #: Seconds a stored response is replayed; after that the key is free again.
    ttl: float = 24 * 3600.0
    #: Methods the key applies to; other methods get a plain write session.
    methods: frozenset[str] = frozenset({"POST", "PATCH"})
    #: Scopes keys of unauthenticated clients (hashed, never stored raw).
    api_key_header: str = "X-API-Key"
    max_key_length: int = 255
    #: Seconds a store reservation blocks duplicates (``idempotency_key`` only).
    lease: float = 60.0
    #: Wall clock in seconds; injectable so tests control expiry.
    clock: Callable[[], float] = field(default=time.time, repr=False)


_DEFAULTS = IdempotencyConfig()


class Slot:
    __slots__ = ("response",)

    def __init__(self) -> None:
        self.response: Response | None = None


class Replay(Exception):  # control flow: never escapes IdempotentRoute
    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("replay")
        self.stored = stored


class IdempotentRoute(APIRoute):
    """The route class for endpoints that use ``IdempotentSession``.

    ``APIRouter(route_class=IdempotentRoute)``. It hands the built response to
    the dependency before the transaction commits, and answers replays.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def idempotent_handler(request: Request) -> Response:
            slot = request.scope[_SLOT] = Slot()
            try:
                response = await handler(request)
            except Replay as replay:
                return replay.stored.to_response()
            slot.response = response
            return response

        return idempotent_handler


def idempotent_session(
    config: IdempotencyConfig | None = None,
) -> Callable[[Request], AsyncIterator[AsyncSession]]:
    """A dependency like ``get_session`` that applies ``config``'s idempotency keys.

    Without ``config``, the app's (``TENFOLD_IDEMPOTENCY__*``, see ``app_config``).
    """

    async def get_idempotent_session(request: Request) -> AsyncIterator[AsyncSession]:
        cfg = config if config is not None else app_config(request)
        slot, identity = await identify(request, cfg)
        database = get_database(request)
        if identity is None:
            async with database.session() as session:
                yield session
            return
        scope, key, printed = identity
        async with database.session() as session:
            stored = await _look_up(session, scope, key, printed, cfg.clock())
            if stored is not None:
                raise Replay(stored)
            yield session
            if slot.response is None:
                # Committing the writes without their response would let a retry run twice.
                raise TenfoldError("IdempotentRoute captured no response; rolling back")
            await _store(session, scope, key, printed, slot.response, cfg)

    return get_idempotent_session


def app_config(request: Request) -> IdempotencyConfig:
    """The platform's ``IdempotencyConfig`` (``TENFOLD_IDEMPOTENCY__*``), else the defaults."""
    from tenfold._platform import find_on
    from tenfold.idempotency._component import IdempotencyComponent

    component = find_on(request.app, IdempotencyComponent)
    return component.config if component is not None else _DEFAULTS


async def identify(
    request: Request, config: IdempotencyConfig
) -> tuple[Slot, tuple[str, str, str] | None]:
    """The route's slot and (scope, key, fingerprint), or None when no key applies."""
    slot = request.scope.get(_SLOT)
    if not isinstance(slot, Slot):
        raise ConfigurationError(
            f"{request.url.path} uses an idempotency dependency without IdempotentRoute: "
            "build its router with APIRouter(route_class=IdempotentRoute)"
        )
    key = _key_of(request, config)
    if key is None:
        return slot, None
    scope = scope_of(request, config.api_key_header)
    if scope is None:
        raise IdempotencyScopeMissing(
            f"{config.header} needs an authenticated user or {config.api_key_header}"
        )
    return slot, (scope, key, fingerprint(request, await request.body()))


def _key_of(request: Request, config: IdempotencyConfig) -> str | None:
    if request.method not in config.methods:
        return None
    raw = request.headers.get(config.header)
    if raw is None:
        if config.required:
            path = request.url.path
            raise IdempotencyKeyMissing(f"{request.method} {path} needs {config.header}")
        return None
    # The IETF draft sends a structured-field string ("..."); Stripe sends it bare.
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not key or len(key) > config.max_key_length:
        raise IdempotencyKeyMissing(
            f"{config.header} must be 1 to {config.max_key_length} characters"
        )
    return key


async def _look_up(
    session: AsyncSession, scope: str, key: str, printed: str, now: float
) -> StoredResponse | None:
    """Lock the key for this transaction; the stored response, or None to run the handler."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        lock_id = int.from_bytes(
            hashlib.sha256(f"{scope}\0{key}".encode()).digest()[:8], "big", signed=True
        )
        if not await session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(lock_id))):
            raise IdempotencyKeyInFlight("a request with this key is still being processed")
    where = (_table.c.scope == scope) & (_table.c.key == key)
    row = (await session.execute(sa.select(_table).where(where))).first()
    if row is None:
        return None
    if row.expires_at <= now:
        await session.execute(sa.delete(_table).where(where))
        return None
    if row.fingerprint != printed:
        raise IdempotencyKeyMismatch("this key was used for a different request")
    headers = tuple((str(name), str(value)) for name, value in row.headers)
    return StoredResponse(row.status, headers, bytes(row.body), await _wal_position(session))


async def _wal_position(session: AsyncSession) -> int | None:
    """The primary's WAL position now: at or past the commit of any row this session sees.

    The stored response was captured before its transaction committed, so its
    commit position was never known; the current one is a token under which a
    replica that has it has the first attempt's writes too.
    """
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return None
    value = await session.scalar(sa.select(sa.func.pg_current_wal_lsn()))
    return value if isinstance(value, int) else None


async def _store(
    session: AsyncSession,
    scope: str,
    key: str,
    printed: str,
    response: Response,
    config: IdempotencyConfig,
) -> None:
    stored = StoredResponse.capture(response)
    await session.execute(
        sa.insert(_table).values(
            scope=scope,
            key=key,
            fingerprint=printed,
            status=stored.status,
            headers=[list(pair) for pair in stored.headers],
            body=stored.body,
            expires_at=config.clock() + config.ttl,
        )
    )


IdempotentSession = Annotated[TenfoldSession, Depends(idempotent_session(), scope="function")]
