"""``Users``: accounts with a username, an argon2id password hash and roles.

    users = Users(db, Passwords.from_settings(settings.auth))
    ann = await users.create("Ann", "correct horse", roles=["editor"])
    user = await users.authenticate("ann", attempt)     # None when refused, for any reason

Usernames are compared in one normal form (NFKC, case folded, surrounding
spaces dropped): "Ann", "ANN" and "ann" name the same account, and so do
"ﬀ" and "ff". The normal form is what is stored and what ``User.username``
holds. Password hashes never leave this module: no returned object carries one.
"""

from __future__ import annotations

import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tenfold._context import Principal
from tenfold._errors import BadRequest, Conflict, IntegrityConflict, NotFound
from tenfold.auth._tables import metadata

if TYPE_CHECKING:
    from tenfold.auth._passwords import Passwords
    from tenfold.db import Database

__all__ = ["User", "Users", "normalize_username", "users_table"]

_MAX_USERNAME = 150
#: argon2 takes any length, but nobody types more, and a megabyte "password" is work.
_MAX_PASSWORD = 1024

#: One row per account; ``username`` in its normal form (see ``normalize_username``).
users_table = sa.Table(
    "tenfold_auth_users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("username", sa.String(_MAX_USERNAME), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    # Seconds since the epoch.
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

_PUBLIC = (
    users_table.c.id,
    users_table.c.username,
    users_table.c.roles,
    users_table.c.disabled,
    users_table.c.created_at,
)


def normalize_username(name: str) -> str:
    """``name`` as stored and compared: NFKC, case folded (then NFKC again, since folding
    can undo it), surrounding whitespace dropped. BadRequest when nothing is left, when it
    is too long, or when it holds control characters."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    folded = folded.strip()
    if not folded:
        raise BadRequest("A username cannot be empty.")
    if len(folded) > _MAX_USERNAME:
        raise BadRequest(f"A username has at most {_MAX_USERNAME} characters.")
    if any(unicodedata.category(ch).startswith("C") for ch in folded):
        raise BadRequest("A username cannot contain control or invisible format characters.")
    return folded


def _check_password(password: str) -> None:
    if not password:
        raise BadRequest("A password cannot be empty.")
    if len(password) > _MAX_PASSWORD:
        raise BadRequest(f"A password has at most {_MAX_PASSWORD} characters.")


def _roles(roles: Iterable[str]) -> tuple[str, ...]:
    if isinstance(roles, str):
        raise TypeError("roles is a collection of role names, not one string")
    return tuple(sorted(set(roles)))


@dataclass(frozen=True, slots=True)
class User:
    """An account as the application sees it (never with its password hash)."""

    id: str
    username: str
    roles: tuple[str, ...]
    disabled: bool
    created_at: float

    def principal(self) -> Principal:
        """The ``Principal`` (kind ``user``) a request authenticated as this user acts as."""
        return Principal(self.id, roles=frozenset(self.roles), kind="user")


def _user(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        roles=tuple(row.roles or ()),
        disabled=bool(row.disabled),
        created_at=row.created_at,
    )


class Users:
    """The accounts in ``tenfold_auth_users`` of ``db``; ``passwords`` hashes and verifies.

    ``clock`` stamps ``created_at``/``updated_at``; ``ids`` makes user ids
    (random UUIDs as text).
    """

    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        *,
        clock: Callable[[], float] = time.time,
        ids: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.clock = clock
        self._ids = ids

    def __repr__(self) -> str:
        return f"<Users {self.db!r}>"

    async def create(self, username: str, password: str, *, roles: Iterable[str] = ()) -> User:
        """A new account; Conflict when the username (in its normal form) is taken."""
        name = normalize_username(username)
        _check_password(password)
        role_names = _roles(roles)
        hashed = await self.passwords.hash_async(password)
        now = self.clock()
        user = User(self._ids(), name, role_names, False, now)
        values = {
            "id": user.id,
            "username": name,
            "password_hash": hashed,
            "roles": list(role_names),
            "disabled": False,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.db.session() as session:
                await session.execute(sa.insert(users_table).values(values))
        except IntegrityConflict as exc:
            raise Conflict("That username is taken.") from exc
        return user

    async def get(self, user_id: str) -> User | None:
        """The account with id ``user_id``, or None."""
        return await self._one(users_table.c.id == user_id)

    async def by_username(self, name: str) -> User | None:
        """The account named ``name`` (in any case or Unicode form), or None."""
        try:
            normal = normalize_username(name)
        except BadRequest:
            return None
        return await self._one(users_table.c.username == normal)

    async def _one(self, where: Any) -> User | None:
        # The primary: right after create or disable, the account must read as it now is.
        async with self.db.session() as session:
            row = (await session.execute(sa.select(*_PUBLIC).where(where))).first()
        return None if row is None else _user(row)

    async def authenticate(self, username: str, password: str) -> User | None:
        """The account if ``password`` is its password and it is not disabled, else None.

        An unknown username costs one verification against a dummy hash, so
        the answer's timing does not say whether the account exists. After a
        correct password whose hash was made with other parameters than the
        current ones, the hash is replaced.
        """
        try:
            normal = normalize_username(username)
        except BadRequest:
            normal = None
        row = None
        if normal is not None:
            async with self.db.session() as session:
                query = sa.select(*_PUBLIC, users_table.c.password_hash).where(
                    users_table.c.username == normal
                )
                row = (await session.execute(query)).first()
        if row is None:
            await self.passwords.verify_nothing_async(password)
            return None
        if not await self.passwords.verify_async(row.password_hash, password):
            return None
        if row.disabled:
            return None
        if self.passwords.needs_rehash(row.password_hash):
            await self._rehash(row.id, row.password_hash, password)
        return _user(row)

    async def _rehash(self, user_id: str, old_hash: str, password: str) -> None:
        hashed = await self.passwords.hash_async(password)
        # Only over the hash just verified: a password changed meanwhile is kept.
        async with self.db.session() as session:
            await session.execute(
                sa.update(users_table)
                .where(users_table.c.id == user_id, users_table.c.password_hash == old_hash)
                .values(password_hash=hashed, updated_at=self.clock())
            )

    async def set_password(self, user_id: str, password: str) -> None:
        """Replace the account's password; NotFound when there is no such account."""
        _check_password(password)
        hashed = await self.passwords.hash_async(password)
        await self._update(user_id, password_hash=hashed)

    async def disable(self, user_id: str) -> None:
        """Refuse the account's logins from now on (its rows stay); NotFound when unknown.

        Tokens already issued are not touched: revoke them too
        (``RefreshTokens.revoke_user``).
        """
        await self._update(user_id, disabled=True)

    async def enable(self, user_id: str) -> None:
        """Accept the account's logins again; NotFound when unknown."""
        await self._update(user_id, disabled=False)

    async def set_roles(self, user_id: str, roles: Iterable[str]) -> User:
        """Replace the account's roles; the account as it now is. NotFound when unknown."""
        await self._update(user_id, roles=list(_roles(roles)))
        user = await self.get(user_id)
        if user is None:  # deleted in between
            raise NotFound("No such user.")
        return user

    async def list(self, *, after: str | None = None, limit: int = 100) -> list[User]:
        """Accounts ordered by username, ``limit`` at most, those after the username
        ``after`` (pass the last one of a page to get the next)."""
        query = sa.select(*_PUBLIC).order_by(users_table.c.username).limit(max(1, limit))
        if after is not None:
            query = query.where(users_table.c.username > after)
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        return [_user(row) for row in rows]

    async def _update(self, user_id: str, **values: Any) -> None:
        async with self.db.session() as session:
            result = await session.execute(
                sa.update(users_table)
                .where(users_table.c.id == user_id)
                .values(**values, updated_at=self.clock())
            )
            if not result.rowcount:
                raise NotFound("No such user.")
