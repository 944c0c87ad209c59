"""``RefreshTokens``: opaque, rotating refresh tokens in families, with reuse detection.

    tokens = RefreshTokens(db, ttl=settings.auth.refresh_ttl, grace=settings.auth.refresh_grace)
    issued = await tokens.issue(user.id)                  # at login
    rotated = await tokens.rotate(presented)              # at each refresh: a new token
    await tokens.revoke_family(rotated.family_id)         # at logout

A token is 256 random bits (``secrets.token_urlsafe(32)``); only its SHA-256
is stored, so a copy of the table logs nobody in (a random secret that long
needs no slow hash). Each login starts a *family*; every refresh replaces the
presented token with a new one of the same family.

A replaced token presented again within ``grace`` seconds of its rotation (a
client that lost the response and retries, two tabs refreshing at once) gets
a new token of the family too. Presented later, it means two parties hold the
family's tokens, one of them not the user: the whole family is revoked, so
the attacker's token and the user's stop working together, and the user logs
in again.

``rotate`` reads the presented token under a row lock (``SELECT ... FOR
UPDATE`` on PostgreSQL; on SQLite every write transaction holds the database's
write lock from ``BEGIN IMMEDIATE``), so of concurrent refreshes with one
token exactly one rotates it and the others see it rotated. Token values
never reach a log line.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tenfold._errors import Unauthorized
from tenfold.auth._tables import metadata
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold.db import Database, TenfoldSession

__all__ = [
    "InvalidRefreshToken",
    "Issued",
    "RefreshTokenReused",
    "RefreshTokens",
    "Rotated",
    "refresh_families",
    "refresh_tokens",
]

_log = get_logger("tenfold.auth")

#: One row per login: the chain of tokens its refreshes made.
refresh_families = sa.Table(
    "tenfold_auth_refresh_families",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(36), nullable=False, index=True),
    # Seconds since the epoch.
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float, nullable=False, index=True),
    sa.Column("revoked_at", sa.Float, nullable=True),
    # logout, logout_all, reuse, or what the application passed.
    sa.Column("revoked_reason", sa.String(64), nullable=True),
)

#: One row per token issued, by the SHA-256 (hex) of its value.
refresh_tokens = sa.Table(
    "tenfold_auth_refresh_tokens",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column(
        "family_id",
        sa.String(36),
        sa.ForeignKey(refresh_families.c.id, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("user_id", sa.String(36), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    # Set when the token was exchanged for ``replaced_by`` (the first exchange only).
    sa.Column("rotated_at", sa.Float, nullable=True),
    sa.Column("replaced_by", sa.String(64), nullable=True),
)

_GENERIC = "The refresh token is not valid. Log in again."


class InvalidRefreshToken(Unauthorized):
    """The refresh token is unknown, expired, or of a revoked family (401).

    The detail is the same whatever the reason, so a client learns nothing
    about tokens it does not hold.
    """

    def __init__(self, detail: str = _GENERIC) -> None:
        super().__init__(detail, challenge='Bearer error="invalid_token"')


class RefreshTokenReused(InvalidRefreshToken):
    """A token replaced longer than the grace period ago was presented: its family is
    revoked now (``family_id`` and ``user_id`` are for logs and alerts)."""

    def __init__(self, *, family_id: str, user_id: str) -> None:
        super().__init__()
        self.family_id = family_id
        self.user_id = user_id
        self.context.update(family_id=family_id, user_id=user_id)


@dataclass(frozen=True, slots=True)
class Issued:
    """A new token (give ``token`` to the client; it is not stored anywhere)."""

    token: str = field(repr=False)
    family_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Rotated:
    """The outcome of a refresh: who it was for, and the token that replaces the old one."""

    user_id: str
    family_id: str
    token: str = field(repr=False)
    expires_at: float


def token_hash(token: str) -> str:
    """The stored form of ``token``: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshTokens:
    """Refresh tokens in ``db``: each lives ``ttl`` seconds from its issue; a replaced one
    is accepted again for ``grace`` seconds after its rotation.

    ``clock`` gives the time (seconds since the epoch); ``tokens`` makes token
    values and ``ids`` family ids, both replaceable in tests.
    """

    def __init__(
        self,
        db: Database,
        *,
        ttl: float,
        grace: float,
        clock: Callable[[], float] = time.time,
        tokens: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        ids: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if grace < 0:
            raise ValueError("grace cannot be negative")
        self.db = db
        self.ttl = ttl
        self.grace = grace
        self.clock = clock
        self._tokens = tokens
        self._ids = ids

    def __repr__(self) -> str:
        return f"<RefreshTokens ttl={self.ttl} grace={self.grace} {self.db!r}>"

    # -- issuing and rotating --------------------------------------------------------------

    async def issue(self, user_id: str, *, family_id: str | None = None) -> Issued:
        """A new token for ``user_id``: of a new family (a login), or of ``family_id``.

        InvalidRefreshToken when ``family_id`` is not a live family of ``user_id``
        (revoked, pruned, or someone else's).
        """
        now = self.clock()
        async with self.db.session() as session:
            if family_id is None:
                family_id = self._ids()
                await session.execute(
                    sa.insert(refresh_families).values(
                        id=family_id, user_id=user_id, created_at=now, last_used_at=now
                    )
                )
            else:
                touched = await session.execute(
                    sa.update(refresh_families)
                    .where(
                        refresh_families.c.id == family_id,
                        refresh_families.c.user_id == user_id,
                        refresh_families.c.revoked_at.is_(None),
                    )
                    .values(last_used_at=now)
                )
                if not touched.rowcount:
                    raise InvalidRefreshToken()
            token, expires_at = await self._insert(session, user_id, family_id, now)
        return Issued(token, family_id, expires_at)

    async def rotate(self, token: str) -> Rotated:
        """Exchange ``token`` for a new one of its family.

        InvalidRefreshToken when it is unknown, expired, or of a revoked
        family; RefreshTokenReused (after revoking the family) when it was
        replaced more than ``grace`` seconds ago.
        """
        now = self.clock()
        reused: RefreshTokenReused | None = None
        async with self.db.session() as session:
            row = await self._locked(session, token_hash(token))
            if row is None or row.revoked_at is not None:
                raise InvalidRefreshToken()
            if row.rotated_at is not None and now - row.rotated_at > self.grace:
                # Not raised here: the revocation must commit with this transaction.
                await self._revoke(session, refresh_families.c.id == row.family_id, "reuse", now)
                reused = RefreshTokenReused(family_id=row.family_id, user_id=row.user_id)
            elif row.expires_at <= now:
                raise InvalidRefreshToken()
            else:
                new, expires_at = await self._insert(session, row.user_id, row.family_id, now)
                if row.rotated_at is None:
                    # Within the grace period a sibling is issued instead, and rotated_at
                    # keeps the first exchange's time: retrying does not extend the window.
                    await session.execute(
                        sa.update(refresh_tokens)
                        .where(refresh_tokens.c.hash == row.hash)
                        .values(rotated_at=now, replaced_by=token_hash(new))
                    )
                await self._touch(session, row.family_id, now)
        if reused is not None:
            _log.warning(
                "refresh_token_reused",
                user_id=reused.user_id,
                family_id=reused.family_id,
                rotated_ago=round(now - row.rotated_at, 3),
            )
            raise reused
        return Rotated(row.user_id, row.family_id, new, expires_at)

    async def _locked(self, session: TenfoldSession, hashed: str) -> Any:
        query = (
            sa.select(refresh_tokens, refresh_families.c.revoked_at)
            .join(refresh_families, refresh_families.c.id == refresh_tokens.c.family_id)
            .where(refresh_tokens.c.hash == hashed)
            # SQLite renders no FOR UPDATE; its BEGIN IMMEDIATE already serialises writers.
            .with_for_update(of=refresh_tokens)
        )
        return (await session.execute(query)).first()

    async def _insert(
        self, session: TenfoldSession, user_id: str, family_id: str, now: float
    ) -> tuple[str, float]:
        token = self._tokens()
        expires_at = now + self.ttl
        await session.execute(
            sa.insert(refresh_tokens).values(
                hash=token_hash(token),
                family_id=family_id,
                user_id=user_id,
                created_at=now,
                expires_at=expires_at,
            )
        )
        return token, expires_at

    async def _touch(self, session: TenfoldSession, family_id: str, now: float) -> None:
        await session.execute(
            sa.update(refresh_families)
            .where(refresh_families.c.id == family_id)
            .values(last_used_at=now)
        )

    # -- revoking ----------------------------------------------------------------------------

    async def revoke_family(self, family_id: str, reason: str = "logout") -> bool:
        """Refuse every token of the family from now on; False when it was already revoked
        (or does not exist)."""
        async with self.db.session() as session:
            where = refresh_families.c.id == family_id
            return bool(await self._revoke(session, where, reason, self.clock()))

    async def revoke_user(self, user_id: str, reason: str = "logout_all") -> int:
        """Revoke every family of ``user_id`` (logout everywhere); how many were live."""
        async with self.db.session() as session:
            where = refresh_families.c.user_id == user_id
            return await self._revoke(session, where, reason, self.clock())

    async def _revoke(self, session: TenfoldSession, where: Any, reason: str, now: float) -> int:
        result = await session.execute(
            sa.update(refresh_families)
            .where(where, refresh_families.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        return int(result.rowcount or 0)

    async def family_of(self, token: str) -> str | None:
        """The family of ``token`` (expired, replaced or revoked too), or None when unknown.

        For logout: revoke the family of the token the client holds.
        """
        async with self.db.session() as session:
            return await session.scalar(
                sa.select(refresh_tokens.c.family_id).where(
                    refresh_tokens.c.hash == token_hash(token)
                )
            )

    # -- housekeeping --------------------------------------------------------------------------

    async def prune(self, now: float | None = None) -> int:
        """Delete tokens expired at ``now`` (default: the clock's time) and families none of
        whose tokens can still be alive; how many tokens went.

        A replaced token is kept until it expires, so its reuse is still
        detected until then.
        """
        at = self.clock() if now is None else now
        async with self.db.session() as session:
            result = await session.execute(
                sa.delete(refresh_tokens).where(refresh_tokens.c.expires_at <= at)
            )
            # Each token is issued at its family's last use, so it expires by last use + ttl.
            orphans = sa.select(refresh_tokens.c.family_id).where(
                refresh_tokens.c.family_id == refresh_families.c.id
            )
            await session.execute(
                sa.delete(refresh_families).where(
                    refresh_families.c.last_used_at + self.ttl <= at, ~sa.exists(orphans)
                )
            )
        return int(result.rowcount or 0)
