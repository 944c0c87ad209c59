"""Refresh tokens on SQLite and PostgreSQL: rotation, grace, reuse detection, revocation."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from tenfold import Unauthorized
from tenfold.auth._refresh import (
    InvalidRefreshToken,
    Issued,
    RefreshTokenReused,
    RefreshTokens,
    Rotated,
    refresh_families,
    refresh_tokens,
)
from tenfold.db import Database
from tenfold.testing import ManualClock
from tenfold.web import problem_for_exception

TTL = 3600.0
GRACE = 10.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def tokens(db: Database, clock: ManualClock) -> RefreshTokens:
    return RefreshTokens(db, ttl=TTL, grace=GRACE, clock=clock)


async def family_row(db: Database, family_id: str) -> sa.Row:
    async with db.session() as session:
        query = sa.select(refresh_families).where(refresh_families.c.id == family_id)
        return (await session.execute(query)).one()


async def token_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(refresh_tokens)))


async def test_issue_then_rotate(tokens: RefreshTokens, clock: ManualClock) -> None:
    """Rotation gives a new token of the same family for the same user, with a fresh expiry."""
    issued = await tokens.issue("user-1")
    assert issued.expires_at == clock.now + TTL
    clock.advance(60)
    rotated = await tokens.rotate(issued.token)
    assert (rotated.user_id, rotated.family_id) == ("user-1", issued.family_id)
    assert rotated.token != issued.token
    assert rotated.expires_at == clock.now + TTL
    again = await tokens.rotate(rotated.token)
    assert again.family_id == issued.family_id


async def test_only_the_hash_is_stored(db: Database, tokens: RefreshTokens) -> None:
    """The table holds the token's SHA-256, never the token."""
    issued = await tokens.issue("user-1")
    async with db.session() as session:
        rows = (await session.execute(sa.select(refresh_tokens))).all()
    assert [row.hash for row in rows] == [hashlib.sha256(issued.token.encode()).hexdigest()]
    assert issued.token not in repr(rows)
    assert len(issued.token) >= 43  # 32 random bytes, base64url


async def test_reuse_after_grace_revokes_the_family(
    db: Database, tokens: RefreshTokens, clock: ManualClock
) -> None:
    """A replaced token presented after the grace period revokes its family: the newest
    token stops working too, and a warning names user and family but not the token."""
    issued = await tokens.issue("user-1")
    rotated = await tokens.rotate(issued.token)
    clock.advance(GRACE + 1)
    with capture_logs() as logs, pytest.raises(RefreshTokenReused) as caught:
        await tokens.rotate(issued.token)
    assert (caught.value.family_id, caught.value.user_id) == (issued.family_id, "user-1")
    family = await family_row(db, issued.family_id)
    assert family.revoked_reason == "reuse"
    assert family.revoked_at == clock.now
    with pytest.raises(InvalidRefreshToken) as refused:
        await tokens.rotate(rotated.token)
    assert not isinstance(refused.value, RefreshTokenReused)
    (warning,) = [line for line in logs if line["event"] == "refresh_token_reused"]
    assert warning["log_level"] == "warning"
    assert (warning["user_id"], warning["family_id"]) == ("user-1", issued.family_id)
    for token in (issued.token, rotated.token):
        assert token not in repr(logs)


async def test_reuse_within_grace_succeeds_without_extending_it(
    tokens: RefreshTokens, clock: ManualClock
) -> None:
    """Within the grace period the replaced token gets another usable token of its family;
    the period still counts from the first rotation."""
    issued = await tokens.issue("user-1")
    first = await tokens.rotate(issued.token)
    clock.advance(GRACE - 1)
    retry = await tokens.rotate(issued.token)
    assert retry.family_id == issued.family_id
    assert retry.token not in (issued.token, first.token)
    # Both the replacement and the sibling are live tokens of the family.
    assert (await tokens.rotate(first.token)).family_id == issued.family_id
    assert (await tokens.rotate(retry.token)).family_id == issued.family_id
    clock.advance(2)  # now GRACE + 1 after the first rotation
    with pytest.raises(RefreshTokenReused):
        await tokens.rotate(issued.token)


async def test_sibling_reused_after_grace_is_detected(
    tokens: RefreshTokens, clock: ManualClock
) -> None:
    """A grace-period sibling follows the same rules: replaced, then reused late, revokes."""
    issued = await tokens.issue("user-1")
    await tokens.rotate(issued.token)
    sibling = await tokens.rotate(issued.token)
    newest = await tokens.rotate(sibling.token)
    clock.advance(GRACE + 1)
    with pytest.raises(RefreshTokenReused):
        await tokens.rotate(sibling.token)
    with pytest.raises(InvalidRefreshToken):
        await tokens.rotate(newest.token)


async def test_concurrent_rotations_all_succeed(db: Database, tokens: RefreshTokens) -> None:
    """Several refreshes racing with one token (separate connections on PostgreSQL) all get
    a distinct usable token; exactly one of them is recorded as the replacement."""
    issued = await tokens.issue("user-1")
    results = await asyncio.gather(*(tokens.rotate(issued.token) for _ in range(5)))
    assert {r.family_id for r in results} == {issued.family_id}
    assert len({r.token for r in results}) == 5
    assert await token_count(db) == 6
    async with db.session() as session:
        old = (
            await session.execute(
                sa.select(refresh_tokens).where(
                    refresh_tokens.c.hash == hashlib.sha256(issued.token.encode()).hexdigest()
                )
            )
        ).one()
    hashes = {hashlib.sha256(r.token.encode()).hexdigest() for r in results}
    assert old.replaced_by in hashes
    for result in results:
        assert (await tokens.rotate(result.token)).user_id == "user-1"


async def wait_until_blocked(db: Database, task: asyncio.Task[object]) -> None:
    """Return once some statement of this database waits on a lock (or ``task`` ended)."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while not task.done():
        async with db.session() as session:
            if await session.scalar(query):
                return
        await asyncio.sleep(0.01)


# PostgreSQL only: SQLite serialises whole write transactions (BEGIN IMMEDIATE).
@pytest.mark.parametrize("db_settings", ["postgresql"], indirect=True)
async def test_rotation_reads_the_token_under_a_row_lock(
    db: Database, tokens: RefreshTokens, clock: ManualClock
) -> None:
    """On PostgreSQL a rotation waits for a transaction holding the token's row and then
    decides on what that one committed (here: a rotation long ago, so reuse)."""
    issued = await tokens.issue("user-1")
    hashed = hashlib.sha256(issued.token.encode()).hexdigest()
    row = refresh_tokens.c.hash == hashed
    async with db.session() as holder:
        await holder.execute(sa.select(refresh_tokens.c.hash).where(row).with_for_update())
        task = asyncio.create_task(tokens.rotate(issued.token))
        await wait_until_blocked(db, task)
        assert not task.done()
        await holder.execute(
            sa.update(refresh_tokens)
            .where(row)
            .values(rotated_at=clock.now - GRACE - 1, replaced_by="0" * 64)
        )
    with pytest.raises(RefreshTokenReused):
        await task


async def test_unknown_and_expired_tokens_are_refused(
    tokens: RefreshTokens, clock: ManualClock
) -> None:
    """An unknown token, or one past its expiry, is an InvalidRefreshToken."""
    with pytest.raises(InvalidRefreshToken):
        await tokens.rotate("never-issued")
    issued = await tokens.issue("user-1")
    clock.advance(TTL)
    with pytest.raises(InvalidRefreshToken) as caught:
        await tokens.rotate(issued.token)
    assert not isinstance(caught.value, RefreshTokenReused)


async def test_logout_revokes_the_family(
    db: Database, tokens: RefreshTokens, clock: ManualClock
) -> None:
    """revoke_family of the presented token's family refuses all of that family's tokens,
    and no other family's."""
    issued = await tokens.issue("user-1")
    other = await tokens.issue("user-1")
    rotated = await tokens.rotate(issued.token)
    family = await tokens.family_of(rotated.token)
    assert family == issued.family_id
    assert await tokens.family_of(issued.token) == issued.family_id
    assert await tokens.family_of("never-issued") is None
    assert await tokens.revoke_family(family) is True
    assert await tokens.revoke_family(family) is False
    assert (await family_row(db, family)).revoked_reason == "logout"
    with pytest.raises(InvalidRefreshToken):
        await tokens.rotate(rotated.token)
    assert (await tokens.rotate(other.token)).family_id == other.family_id


async def test_logout_everywhere_revokes_every_family_of_the_user(tokens: RefreshTokens) -> None:
    """revoke_user revokes each live family of the user and counts them; others keep theirs."""
    mine = [await tokens.issue("user-1") for _ in range(3)]
    theirs = await tokens.issue("user-2")
    await tokens.revoke_family(mine[0].family_id)
    assert await tokens.revoke_user("user-1") == 2
    assert await tokens.revoke_user("user-1") == 0
    for issued in mine:
        with pytest.raises(InvalidRefreshToken):
            await tokens.rotate(issued.token)
    assert (await tokens.rotate(theirs.token)).user_id == "user-2"


async def test_issue_into_a_family(tokens: RefreshTokens) -> None:
    """issue(family_id=) adds a token to the user's live family, and refuses any other."""
    issued = await tokens.issue("user-1")
    more = await tokens.issue("user-1", family_id=issued.family_id)
    assert more.family_id == issued.family_id
    assert (await tokens.rotate(more.token)).family_id == issued.family_id
    with pytest.raises(InvalidRefreshToken):
        await tokens.issue("user-2", family_id=issued.family_id)
    with pytest.raises(InvalidRefreshToken):
        await tokens.issue("user-1", family_id="no-such-family")
    await tokens.revoke_family(issued.family_id)
    with pytest.raises(InvalidRefreshToken):
        await tokens.issue("user-1", family_id=issued.family_id)


async def test_prune_deletes_expired_rows(
    db: Database, tokens: RefreshTokens, clock: ManualClock
) -> None:
    """prune removes expired tokens and families left without tokens; live ones stay."""
    old = await tokens.issue("user-1")
    await tokens.rotate(old.token)  # two tokens in old's family, both expiring at + TTL
    clock.advance(TTL / 2)
    young = await tokens.issue("user-1")
    clock.advance(TTL / 2)
    assert await tokens.prune(clock.now) == 2
    assert await token_count(db) == 1
    async with db.session() as session:
        families = (await session.execute(sa.select(refresh_families.c.id))).scalars().all()
    assert families == [young.family_id]
    assert (await tokens.rotate(young.token)).family_id == young.family_id
    assert await tokens.family_of(old.token) is None


def test_tokens_are_not_in_reprs() -> None:
    """Issued and Rotated keep the token out of their repr."""
    issued = Issued("secret-token-value", "fam", 1.0)
    rotated = Rotated("user", "fam", "secret-token-value", 1.0)
    assert "secret-token-value" not in repr(issued)
    assert "secret-token-value" not in repr(rotated)


@pytest.mark.parametrize(
    "error",
    [InvalidRefreshToken(), RefreshTokenReused(family_id="fam-1", user_id="user-1")],
)
def test_invalid_refresh_token_is_a_401_problem(error: InvalidRefreshToken) -> None:
    """Both errors answer 401 problem+json with a Bearer challenge and the same generic
    detail (the core registry's Unauthorized entry); ids stay out of the body."""
    assert isinstance(error, Unauthorized)
    response = problem_for_exception(error)
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    body = json.loads(response.body)
    assert body["status"] == 401
    assert body["detail"] == InvalidRefreshToken().message
    assert "fam-1" not in response.body.decode()
    assert "user-1" not in response.body.decode()
