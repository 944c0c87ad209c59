"""Users on SQLite and PostgreSQL: create, normalised names, authenticate, rehash, disable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from tenfold import BadRequest, Conflict, NotFound, Principal
from tenfold.auth._passwords import Passwords
from tenfold.auth._users import User, Users, normalize_username, users_table
from tenfold.db import Database
from tenfold.testing import ManualClock

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


class CountingHasher(PasswordHasher):
    """A real hasher that records the hashes it verified against."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(str(hash))
        return super().verify(hash, password)


@pytest.fixture
def hasher() -> list[CountingHasher]:
    return []


@pytest.fixture
def passwords(hasher: list[CountingHasher]) -> Iterator[Passwords]:
    def factory(**kw: Any) -> CountingHasher:
        hasher.append(CountingHasher(**kw))
        return hasher[-1]

    passwords = Passwords(**FAST, hasher_factory=factory)
    yield passwords
    passwords.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def users(db: Database, passwords: Passwords, clock: ManualClock) -> Users:
    return Users(db, passwords, clock=clock)


async def stored_hash(db: Database, user_id: str) -> str:
    async with db.session() as session:
        query = sa.select(users_table.c.password_hash).where(users_table.c.id == user_id)
        return str(await session.scalar(query))


async def test_create_and_read_back(users: Users, clock: ManualClock) -> None:
    """A created user reads back by id and by name, with its roles, enabled."""
    ann = await users.create("Ann", "correct horse", roles=["editor", "admin", "editor"])
    assert ann.username == "ann"
    assert ann.roles == ("admin", "editor")
    assert ann.disabled is False
    assert ann.created_at == clock.now
    assert await users.get(ann.id) == ann
    assert await users.by_username("ANN") == ann
    assert await users.get("no-such-id") is None
    assert await users.by_username("bob") is None


async def test_no_password_hash_in_returned_objects(users: Users, db: Database) -> None:
    """Neither the User nor its repr carries the password hash."""
    ann = await users.create("ann", "correct horse")
    hashed = await stored_hash(db, ann.id)
    assert hashed.startswith("$argon2id$")
    authenticated = await users.authenticate("ann", "correct horse")
    for user in (ann, authenticated, await users.get(ann.id)):
        assert user is not None
        assert hashed not in repr(user)
        assert "argon2" not in repr(user)
        assert not hasattr(user, "password_hash")


async def test_duplicate_username_is_a_conflict(users: Users) -> None:
    """A taken username, in any case or Unicode form, is a Conflict with a clear detail."""
    await users.create("Ann", "one password")
    with pytest.raises(Conflict, match="username is taken"):
        await users.create("ann", "another password")
    with pytest.raises(Conflict):
        await users.create(" ANN ", "another password")


async def test_username_normalisation(users: Users) -> None:
    """Case and compatibility forms fold together: "Ann"/"ann", the "ﬀ" ligature/"ff"."""
    assert normalize_username("Ann") == normalize_username("ann") == "ann"
    assert normalize_username("e\ufb00ort") == "effort"
    assert normalize_username("Straße") == "strasse"
    effort = await users.create("e\ufb00ort", "pw")
    assert effort.username == "effort"
    assert await users.by_username("EFFORT") == effort
    assert await users.authenticate("Effort", "pw") == effort
    with pytest.raises(Conflict):
        await users.create("effort", "pw")


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "x" * 151, "zero\u200bwidth"])
def test_unusable_usernames_are_refused(name: str) -> None:
    """Empty, overlong and control-character usernames are a BadRequest."""
    with pytest.raises(BadRequest):
        normalize_username(name)


async def test_authenticate(users: Users) -> None:
    """The right password gives the user; a wrong one gives None."""
    ann = await users.create("ann", "correct horse")
    assert await users.authenticate("Ann", "correct horse") == ann
    assert await users.authenticate("ann", "wrong horse") is None


async def test_unknown_user_spends_a_dummy_verification(
    users: Users, hasher: list[CountingHasher]
) -> None:
    """An unknown username gives None after verifying against the dummy hash (same work)."""
    await users.create("ann", "correct horse")
    (counting,) = hasher
    counting.verified.clear()
    assert await users.authenticate("bob", "correct horse") is None
    assert await users.authenticate("", "correct horse") is None  # unusable name too
    assert len(counting.verified) == 2
    assert counting.verified[0] == counting.verified[1]
    # the dummy, not any stored user's hash
    assert await users.authenticate("ann", "correct horse") is not None
    assert counting.verified[2] != counting.verified[0]


async def test_disabled_user_is_refused(users: Users, hasher: list[CountingHasher]) -> None:
    """A disabled user's correct password gives None (after the same verification work)."""
    ann = await users.create("ann", "correct horse")
    await users.disable(ann.id)
    (counting,) = hasher
    counting.verified.clear()
    assert await users.authenticate("ann", "correct horse") is None
    assert len(counting.verified) == 1
    disabled = await users.get(ann.id)
    assert disabled is not None
    assert disabled.disabled is True
    await users.enable(ann.id)
    assert await users.authenticate("ann", "correct horse") is not None


async def test_set_password(users: Users) -> None:
    """After set_password the new password works and the old one does not."""
    ann = await users.create("ann", "old password")
    await users.set_password(ann.id, "new password")
    assert await users.authenticate("ann", "old password") is None
    assert await users.authenticate("ann", "new password") == ann


async def test_set_roles_and_principal(users: Users) -> None:
    """set_roles replaces the roles; principal() is a user Principal with them."""
    ann = await users.create("ann", "pw", roles=["reader"])
    await users.set_roles(ann.id, ["editor", "admin"])
    updated = await users.get(ann.id)
    assert updated is not None
    assert updated.roles == ("admin", "editor")
    principal = updated.principal()
    assert principal == Principal(ann.id, roles=frozenset({"admin", "editor"}), kind="user")
    assert principal.kind == "user"


async def test_unknown_user_id_is_not_found(users: Users) -> None:
    """Changing an account that does not exist is NotFound."""
    for call in (
        users.set_password("nope", "pw"),
        users.disable("nope"),
        users.set_roles("nope", ["x"]),
    ):
        with pytest.raises(NotFound):
            await call


async def test_parameter_change_rehashes_at_login(
    db: Database, users: Users, clock: ManualClock
) -> None:
    """After the argon2 parameters change, a correct login stores a hash with the new ones."""
    ann = await users.create("ann", "correct horse")
    old = await stored_hash(db, ann.id)
    assert "m=8,t=1,p=1" in old
    stronger = Passwords(time_cost=2, memory_cost=16, parallelism=1)
    try:
        upgraded = Users(db, stronger, clock=clock)
        assert await upgraded.authenticate("ann", "wrong horse") is None
        assert await stored_hash(db, ann.id) == old  # a wrong password changes nothing
        clock.advance(5)
        assert await upgraded.authenticate("ann", "correct horse") == ann
        new = await stored_hash(db, ann.id)
        assert new.startswith("$argon2id$v=19$m=16,t=2,p=1$")
        assert not stronger.needs_rehash(new)
        assert await upgraded.authenticate("ann", "correct horse") == ann
        assert await stored_hash(db, ann.id) == new  # no rehash when not needed
    finally:
        stronger.close()


def test_user_is_frozen() -> None:
    """User is an immutable value."""
    user = User("id", "ann", (), False, 1.0)
    with pytest.raises(AttributeError):
        user.username = "bob"  # type: ignore[misc]


async def test_list_pages_by_username(db: Database) -> None:
    """Accounts come in username order, a page at a time."""
    users = Users(db, Passwords(time_cost=1, memory_cost=8, parallelism=1))
    for name in ("cy", "ann", "bo"):
        await users.create(name, "a long enough password")
    first = await users.list(limit=2)
    assert [u.username for u in first] == ["ann", "bo"]
    rest = await users.list(after=first[-1].username, limit=2)
    assert [u.username for u in rest] == ["cy"]
    changed = await users.set_roles(rest[0].id, ["admin"])
    assert changed.roles == ("admin",)
