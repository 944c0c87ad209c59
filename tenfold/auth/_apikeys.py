"""API keys for service-to-service calls.

    keys = ApiKeys(db, prefix="tfk")
    new = await keys.create("billing", name="nightly export", scopes=["invoices:read"])
    new.key                      # "tfk_<key id>_<secret>": shown once, never stored
    principal = await keys.verify(new.key)
    app = create_app(authenticate=keys.authenticate)   # reads the X-API-Key header

A key is ``<prefix>_<key id>_<secret>``: the key id (16 characters of
``[a-z2-7]``) is visible, names the key in lists and logs, and finds its row
by primary key; the secret is ``secrets.token_urlsafe(32)`` and only its
SHA-256 is stored (a 256-bit random secret needs no slow hash), compared in
constant time.

The principal of a key has ``kind="api_key"``, ``id`` the key's **owner**
(so per-user limits, ownership and logs see who the key acts for), the key's
``scopes`` as its scopes and no roles; ``claims`` hold ``key_id`` and
``key_name``. ``tenfold.auth`` access checks give such a principal its scopes
and nothing else: never the owner's roles or grants.

Costs: a verification is one primary-key lookup on the primary (a replica
could still accept a revoked key), or none when the key was verified in this
process less than ``cache_ttl`` seconds ago (30 by default). So a revocation,
or the end of a rotation's overlap, made by another process applies here
within ``cache_ttl``; this process's own ``revoke`` and ``rotate`` apply at
once. ``cache_ttl=0`` turns the cache off. ``last_used_at`` is written at
most once a minute per key and process (``touch_interval``), not per request.
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from starlette.requests import HTTPConnection

from tenfold._context import Principal
from tenfold._errors import (
    Conflict,
    DatabaseError,
    DependencyUnavailable,
    NotFound,
    Unauthorized,
)
from tenfold.auth._rbac import valid_held_permission
from tenfold.auth._tables import metadata
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold.auth._settings import AuthSettings
    from tenfold.db import Database

__all__ = ["ApiKey", "ApiKeys", "InvalidApiKey", "NewKey", "api_keys_table"]

_log = get_logger("tenfold.auth.apikeys")

_KEY_ID = re.compile(r"[a-z2-7]{16}").fullmatch
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}").fullmatch
#: Longer strings are refused before any parsing (prefix 16 + id 16 + secret 43 + 2).
_MAX_KEY = 80
_CACHE_SIZE = 10_000

api_keys_table = sa.Table(
    "tenfold_auth_api_keys",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("owner_id", sa.String(128), nullable=False, index=True),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("replaces", sa.String(16), nullable=True),
)


class InvalidApiKey(Unauthorized):
    """The API key is malformed, unknown, wrong, revoked or expired (401)."""

    def __init__(self, detail: str = "invalid API key", *, reason: str = "invalid") -> None:
        super().__init__(detail, challenge='ApiKey error="invalid_key"')
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key's record (never its secret)."""

    id: str
    name: str
    owner_id: str
    scopes: frozenset[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    replaces: str | None = None

    def active_at(self, now: float) -> bool:
        """Neither revoked nor expired at ``now`` (seconds since the epoch)."""
        expired = self.expires_at is not None and self.expires_at.timestamp() <= now
        return self.revoked_at is None and not expired


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: ``key`` is the full string, shown to its holder once."""

    key: str = field(repr=False)
    record: ApiKey


@dataclass(slots=True)
class _Verified:
    digest: str
    record: ApiKey
    until: float


class ApiKeys:
    """API keys in the ``tenfold_auth_api_keys`` table; see the module docstring.

    ``clock`` gives the time (seconds since the epoch); ``header`` is where
    ``authenticate`` reads a key from.
    """

    def __init__(
        self,
        db: Database,
        *,
        prefix: str = "tfk",
        header: str = "X-API-Key",
        clock: Callable[[], float] = time.time,
        cache_ttl: float = 30.0,
        touch_interval: float = 60.0,
    ) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{1,15}", prefix):
            raise ValueError(f"an API key prefix is 2-16 of [a-z0-9], from a letter: {prefix!r}")
        self.db = db
        self.prefix = prefix
        self.header = header
        self.clock = clock
        self.cache_ttl = cache_ttl
        self.touch_interval = touch_interval
        self._verified: dict[str, _Verified] = {}
        self._touched: dict[str, float] = {}

    @classmethod
    def from_settings(cls, db: Database, settings: AuthSettings, **options: Any) -> ApiKeys:
        """Keys with the prefix and header of ``TENFOLD_AUTH__API_KEY_*``."""
        return cls(db, prefix=settings.api_key_prefix, header=settings.api_key_header, **options)

    def __repr__(self) -> str:
        return f"<ApiKeys prefix={self.prefix!r} {self.db!r}>"

    # -- issuing ---------------------------------------------------------------------------

    async def create(
        self,
        owner_id: str,
        *,
        name: str,
        scopes: Iterable[str],
        expires_in: float | None = None,
    ) -> NewKey:
        """A new key for ``owner_id`` holding ``scopes`` (permissions, wildcards allowed)."""
        async with self.db.session() as session:
            return await self._insert(session, owner_id, name, scopes, expires_in, None)

    async def rotate(
        self, key_id: str, *, overlap: float, expires_in: float | None = None
    ) -> NewKey:
        """A new key with ``key_id``'s owner, name and scopes; the old one stops working
        ``overlap`` seconds from now (or earlier, if it expires earlier anyway).

        The new key lives ``expires_in`` seconds, by default as long as the old one
        was made to. ``NotFound`` for an unknown key, ``Conflict`` for a revoked or
        expired one.
        """
        if overlap < 0:
            raise ValueError("overlap is a number of seconds >= 0")
        now = self.clock()
        async with self.db.session() as session:
            old = await self._get(session, key_id, for_update=True)
            if old is None:
                raise NotFound("no such API key")
            if not old.active_at(now):
                raise Conflict("a revoked or expired API key cannot be rotated")
            if expires_in is None and old.expires_at is not None:
                expires_in = (old.expires_at - old.created_at).total_seconds()
            end = now + overlap
            if old.expires_at is None or old.expires_at.timestamp() > end:
                await session.execute(
                    sa.update(api_keys_table)
                    .where(api_keys_table.c.id == key_id)
                    .values(expires_at=_at(end))
                )
            new = await self._insert(
                session, old.owner_id, old.name, old.scopes, expires_in, key_id
            )
        self._forget(key_id)
        return new

    async def revoke(self, key_id: str) -> bool:
        """Revoke ``key_id`` for good; False if it was unknown or revoked already."""
        statement = (
            sa.update(api_keys_table)
            .where(api_keys_table.c.id == key_id, api_keys_table.c.revoked_at.is_(None))
            .values(revoked_at=_at(self.clock()))
            .returning(api_keys_table.c.id)
        )
        async with self.db.session() as session:
            done = (await session.execute(statement)).first()
        self._forget(key_id)
        return done is not None

    async def get(self, key_id: str) -> ApiKey | None:
        """The record of ``key_id``, or None."""
        async with self.db.session() as session:
            return await self._get(session, key_id)

    async def list(self, owner_id: str) -> builtins.list[ApiKey]:
        """Every key of ``owner_id`` (revoked and expired ones too), oldest first."""
        statement = (
            sa.select(api_keys_table)
            .where(api_keys_table.c.owner_id == owner_id)
            .order_by(api_keys_table.c.created_at, api_keys_table.c.id)
        )
        async with self.db.session() as session:
            rows = (await session.execute(statement)).all()
        return [_record(row) for row in rows]

    # -- verifying -------------------------------------------------------------------------

    async def verify(self, key: str) -> Principal:
        """The principal ``key`` authenticates; ``InvalidApiKey`` (401) if it does not."""
        key_id, secret = self._parse(key)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        now = self.clock()
        cached = self._verified.get(key_id)
        if cached is not None and cached.until > now:
            record = cached.record
            if not hmac.compare_digest(cached.digest, digest):
                raise InvalidApiKey(reason="wrong")
        else:
            record, stored = await self._lookup(key_id)
            # Compared even for an unknown id, so both take the same time.
            if not hmac.compare_digest(stored, digest) or record is None:
                raise InvalidApiKey(reason="wrong" if record is not None else "unknown")
            self._remember(key_id, _Verified(stored, record, now + self.cache_ttl))
        self._check_active(record, now)
        await self._touch(key_id, now)
        return Principal(
            record.owner_id,
            scopes=record.scopes,
            kind="api_key",
            claims={"key_id": record.id, "key_name": record.name},
        )

    async def authenticate(self, connection: HTTPConnection) -> Principal | None:
        """An authenticator for ``create_app(authenticate=...)``: the key in ``header``,
        None without one, 401 for a bad one."""
        key = connection.headers.get(self.header)
        if key is None:
            return None
        return await self.verify(key)

    # -- internals -------------------------------------------------------------------------

    def _parse(self, key: Any) -> tuple[str, str]:
        if not isinstance(key, str) or len(key) > _MAX_KEY:
            raise InvalidApiKey("malformed API key", reason="malformed")
        prefix, _, rest = key.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != self.prefix or _KEY_ID(key_id) is None or _SECRET(secret) is None:
            raise InvalidApiKey("malformed API key", reason="malformed")
        return key_id, secret

    def _check_active(self, record: ApiKey, now: float) -> None:
        if record.revoked_at is not None:
            raise InvalidApiKey("this API key was revoked", reason="revoked")
        if record.expires_at is not None and record.expires_at.timestamp() <= now:
            raise InvalidApiKey("this API key has expired", reason="expired")

    async def _lookup(self, key_id: str) -> tuple[ApiKey | None, str]:
        statement = sa.select(api_keys_table).where(api_keys_table.c.id == key_id)
        async with self.db.session() as session:
            row = (await session.execute(statement)).first()
        if row is None:
            return None, "0" * 64
        return _record(row), row.secret_hash

    async def _touch(self, key_id: str, now: float) -> None:
        last = self._touched.get(key_id)
        if last is not None and now - last < self.touch_interval:
            return
        if len(self._touched) >= _CACHE_SIZE:
            self._touched.clear()
        self._touched[key_id] = now
        statement = (
            sa.update(api_keys_table)
            .where(api_keys_table.c.id == key_id)
            .values(last_used_at=_at(now))
        )
        try:
            async with self.db.session() as session:
                await session.execute(statement)
        except (DatabaseError, DependencyUnavailable) as exc:
            # Bookkeeping only: the key was verified, the request goes on.
            _log.warning("api_key_touch_failed", key_id=key_id, error=type(exc).__name__)

    def _remember(self, key_id: str, entry: _Verified) -> None:
        if self.cache_ttl <= 0:
            return
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))
        self._verified[key_id] = entry

    def _forget(self, key_id: str) -> None:
        self._verified.pop(key_id, None)

    async def _get(self, session: Any, key_id: str, *, for_update: bool = False) -> ApiKey | None:
        statement = sa.select(api_keys_table).where(api_keys_table.c.id == key_id)
        if for_update:  # two rotations of one key run one after the other
            statement = statement.with_for_update()
        row = (await session.execute(statement)).first()
        return _record(row) if row is not None else None

    async def _insert(
        self,
        session: Any,
        owner_id: str,
        name: str,
        scopes: Iterable[str],
        expires_in: float | None,
        replaces: str | None,
    ) -> NewKey:
        held = _checked(owner_id, name, scopes, expires_in)
        now = self.clock()
        key_id = base64.b32encode(secrets.token_bytes(10)).decode().lower()
        secret = secrets.token_urlsafe(32)
        values = {
            "id": key_id,
            "name": name,
            "owner_id": owner_id,
            "scopes": sorted(held),
            "secret_hash": hashlib.sha256(secret.encode()).hexdigest(),
            "created_at": _at(now),
            "expires_at": _at(now + expires_in) if expires_in is not None else None,
            "replaces": replaces,
        }
        await session.execute(sa.insert(api_keys_table).values(**values))
        record = ApiKey(
            id=key_id,
            name=name,
            owner_id=owner_id,
            scopes=held,
            created_at=values["created_at"],
            expires_at=values["expires_at"],
            replaces=replaces,
        )
        return NewKey(f"{self.prefix}_{key_id}_{secret}", record)


def _checked(
    owner_id: str, name: str, scopes: Iterable[str], expires_in: float | None
) -> frozenset[str]:
    if not isinstance(owner_id, str) or not 0 < len(owner_id) <= 128:
        raise ValueError("an owner id is a string of 1-128 characters")
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise ValueError("a key's name is a string of 1-200 characters")
    if isinstance(scopes, str):
        raise ValueError("scopes is a list of permissions, not one string")
    held = frozenset(scopes)
    bad = [s for s in held if not valid_held_permission(s)]
    if bad:
        raise ValueError(f"not a permission: {bad[0]!r}")
    if expires_in is not None and not expires_in > 0:
        raise ValueError("expires_in is a number of seconds > 0")
    return held


def _record(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        owner_id=row.owner_id,
        scopes=frozenset(row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        replaces=row.replaces,
    )


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
