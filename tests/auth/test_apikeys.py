"""API keys on both databases: issue, verify, refuse, revoke, expire, rotate, and over HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Depends

from tenfold import Conflict, NotFound, Principal, Settings, create_app
from tenfold.auth._apikeys import ApiKeys, InvalidApiKey, api_keys_table
from tenfold.auth._rbac import Access, Roles, require
from tenfold.auth._settings import AuthSettings
from tenfold.db import Database
from tenfold.testing import ManualClock

START = 1_700_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def keys(db: Database, clock: ManualClock) -> ApiKeys:
    return ApiKeys(db, prefix="tfk", clock=clock)


async def test_a_created_key_verifies_to_its_owner_with_its_scopes(keys: ApiKeys) -> None:
    """The key string has the documented form and verifies to an api_key principal."""
    new = await keys.create("billing", name="export", scopes=["invoices:read", "reports:*"])
    prefix, key_id, secret = new.key.split("_", 2)
    assert prefix == "tfk"
    assert key_id == new.record.id
    assert len(secret) == 43
    assert new.key not in repr(new)

    principal = await keys.verify(new.key)
    assert principal.id == "billing"
    assert principal.kind == "api_key"
    assert principal.scopes == {"invoices:read", "reports:*"}
    assert principal.roles == frozenset()
    assert principal.claims == {"key_id": key_id, "key_name": "export"}


async def test_only_the_secrets_hash_is_stored(db: Database, keys: ApiKeys) -> None:
    """The row holds SHA-256 of the secret, never the secret or the key."""
    new = await keys.create("billing", name="export", scopes=[])
    secret = new.key.split("_", 2)[2]
    async with db.session() as session:
        row = (await session.execute(sa.select(api_keys_table))).one()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(tuple(row))


async def test_a_wrong_secret_is_refused(keys: ApiKeys) -> None:
    """The right key id with another secret is a 401, before and after the key was cached."""
    new = await keys.create("billing", name="export", scopes=[])
    prefix, key_id, secret = new.key.split("_", 2)
    forged = f"{prefix}_{key_id}_{'B' if secret[0] == 'A' else 'A'}{secret[1:]}"
    with pytest.raises(InvalidApiKey):
        await keys.verify(forged)
    await keys.verify(new.key)  # now cached
    with pytest.raises(InvalidApiKey):
        await keys.verify(forged)
    other = await keys.create("billing", name="other", scopes=[])
    with pytest.raises(InvalidApiKey):  # another key's secret
        await keys.verify(f"{prefix}_{key_id}_{other.key.split('_', 2)[2]}")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "tfk",
        "no-underscore-at-all",
        "tfk_abcdefghijklmnop",
        "xyz_abcdefghijklmnop_" + "A" * 43,
        "tfk_ABCDEFGHIJKLMNOP_" + "A" * 43,
        "tfk_abcdefghijklmno_" + "A" * 43,
        "tfk_abcdefghijklmnop_" + "A" * 42,
        "tfk_abcdefghijklmnop_" + "A" * 42 + "!",
        "tfk_abcdefghijklmnop_" + "A" * 10_000,
        "x" * 1_000_000,
        "tfk_abcdefghijklmnop_" + "A" * 43,  # well-formed but unknown
    ],
)
async def test_malformed_and_unknown_keys_are_refused(keys: ApiKeys, key: str) -> None:
    """Anything but a known, well-formed key of this prefix is an InvalidApiKey (a 401)."""
    with pytest.raises(InvalidApiKey) as refused:
        await keys.verify(key)
    assert refused.value.reason in ("malformed", "unknown")


async def test_a_revoked_key_is_refused(keys: ApiKeys) -> None:
    """Revoking a key refuses it at once in the process that revoked it."""
    new = await keys.create("billing", name="export", scopes=[])
    await keys.verify(new.key)
    assert await keys.revoke(new.record.id)
    assert not await keys.revoke(new.record.id)
    with pytest.raises(InvalidApiKey) as refused:
        await keys.verify(new.key)
    assert refused.value.reason == "revoked"
    assert not await keys.revoke("abcdefghijklmnop")


async def test_another_process_sees_a_revocation_within_the_cache_ttl(
    db: Database, clock: ManualClock
) -> None:
    """A key cached by another instance keeps working until its cache entry ends, not longer."""
    here = ApiKeys(db, clock=clock, cache_ttl=30)
    there = ApiKeys(db, clock=clock, cache_ttl=30)
    new = await here.create("billing", name="export", scopes=[])
    await there.verify(new.key)
    await here.revoke(new.record.id)
    clock.advance(29)
    assert (await there.verify(new.key)).id == "billing"
    clock.advance(2)
    with pytest.raises(InvalidApiKey):
        await there.verify(new.key)
    uncached = ApiKeys(db, clock=clock, cache_ttl=0)
    with pytest.raises(InvalidApiKey):
        await uncached.verify(new.key)


async def test_an_expired_key_is_refused(keys: ApiKeys, clock: ManualClock) -> None:
    """A key made to live an hour works just before the hour and is refused from then on."""
    new = await keys.create("billing", name="export", scopes=[], expires_in=3600)
    assert new.record.expires_at is not None
    assert new.record.expires_at.timestamp() == START + 3600
    clock.advance(3599)
    await keys.verify(new.key)  # cached from here on: expiry still applies
    clock.advance(1)
    with pytest.raises(InvalidApiKey) as refused:
        await keys.verify(new.key)
    assert refused.value.reason == "expired"


async def test_rotation_overlaps_then_ends_the_old_key(
    db: Database, keys: ApiKeys, clock: ManualClock
) -> None:
    """Both keys work during the overlap; then the old one is a 401 and the new one works."""
    old = await keys.create("billing", name="export", scopes=["invoices:read"])
    await keys.verify(old.key)
    new = await keys.rotate(old.record.id, overlap=300)
    assert new.record.replaces == old.record.id
    assert new.record.owner_id == "billing"
    assert new.record.scopes == {"invoices:read"}
    assert new.record.expires_at is None
    assert new.key != old.key
    clock.advance(299)
    assert (await keys.verify(old.key)).id == "billing"
    assert (await keys.verify(new.key)).scopes == {"invoices:read"}
    clock.advance(1)
    with pytest.raises(InvalidApiKey):
        await keys.verify(old.key)
    assert (await keys.verify(new.key)).claims["key_id"] == new.record.id
    # A fresh instance (another process) agrees.
    with pytest.raises(InvalidApiKey):
        await ApiKeys(db, clock=clock).verify(old.key)


async def test_rotation_never_extends_the_old_key(keys: ApiKeys, clock: ManualClock) -> None:
    """An old key expiring before the overlap ends keeps its expiry; the new one its lifetime."""
    old = await keys.create("billing", name="export", scopes=[], expires_in=100)
    new = await keys.rotate(old.record.id, overlap=1000)
    assert new.record.expires_at is not None
    assert new.record.expires_at.timestamp() == START + 100  # the same lifetime, from now
    clock.advance(100)
    with pytest.raises(InvalidApiKey):
        await keys.verify(old.key)
    clock.advance(-1)
    await keys.verify(new.key)


async def test_rotating_an_unknown_or_dead_key_fails(keys: ApiKeys) -> None:
    """Unknown keys are NotFound, revoked ones Conflict."""
    with pytest.raises(NotFound):
        await keys.rotate("abcdefghijklmnop", overlap=10)
    old = await keys.create("billing", name="export", scopes=[])
    await keys.revoke(old.record.id)
    with pytest.raises(Conflict):
        await keys.rotate(old.record.id, overlap=10)


async def test_list_shows_an_owners_keys(keys: ApiKeys, clock: ManualClock) -> None:
    """list() gives the owner's keys, oldest first, revoked ones included, no one else's."""
    first = await keys.create("billing", name="one", scopes=[])
    clock.advance(1)
    second = await keys.create("billing", name="two", scopes=["a:b"])
    await keys.create("search", name="theirs", scopes=[])
    await keys.revoke(first.record.id)
    listed = await keys.list("billing")
    assert [k.id for k in listed] == [first.record.id, second.record.id]
    assert listed[0].revoked_at is not None
    assert listed[1].scopes == {"a:b"}
    assert await keys.list("nobody") == []


async def test_last_used_is_written_at_most_once_a_minute(
    keys: ApiKeys, clock: ManualClock
) -> None:
    """Verifications within a minute of the last write leave last_used_at alone."""
    new = await keys.create("billing", name="export", scopes=[])
    await keys.verify(new.key)
    first = (await keys.get(new.record.id)).last_used_at  # type: ignore[union-attr]
    assert first is not None
    assert first.timestamp() == START
    clock.advance(59)
    await keys.verify(new.key)
    assert (await keys.get(new.record.id)).last_used_at == first  # type: ignore[union-attr]
    clock.advance(1)
    await keys.verify(new.key)
    later = (await keys.get(new.record.id)).last_used_at  # type: ignore[union-attr]
    assert later is not None
    assert later.timestamp() == START + 60


async def test_bad_arguments_are_refused(keys: ApiKeys) -> None:
    """Bad scopes, names, owners and lifetimes fail before anything is stored."""
    with pytest.raises(ValueError):
        await keys.create("billing", name="x", scopes=["not a scope"])
    with pytest.raises(ValueError):
        await keys.create("billing", name="x", scopes="invoices:read")
    with pytest.raises(ValueError):
        await keys.create("", name="x", scopes=[])
    with pytest.raises(ValueError):
        await keys.create("billing", name="", scopes=[])
    with pytest.raises(ValueError):
        await keys.create("billing", name="x", scopes=[], expires_in=0)
    assert await keys.list("billing") == []


async def test_settings_give_the_prefix_and_header(db: Database) -> None:
    """from_settings uses TENFOLD_AUTH__API_KEY_PREFIX and _HEADER."""
    keys = ApiKeys.from_settings(db, AuthSettings(api_key_prefix="acme", api_key_header="X-Key"))
    new = await keys.create("billing", name="x", scopes=[])
    assert new.key.startswith("acme_")
    assert keys.header == "X-Key"
    with pytest.raises(InvalidApiKey):
        await ApiKeys(db).verify(new.key)  # another prefix


async def test_keys_over_http(db: Database, tmp_path: Path, clock: ManualClock) -> None:
    """The authenticator: 200 with a key holding the scope, 403 without it, 401 for a bad
    or revoked key, all as problem+json."""
    keys = ApiKeys(db, clock=clock)
    access = Access(Roles({}))
    router = APIRouter()

    @router.get("/invoices")
    async def invoices(who: Principal = Depends(require("invoices:read", access=access))) -> dict:
        return {"for": who.id, "key": who.claims["key_id"]}

    settings = Settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})  # type: ignore[arg-type]
    app = create_app(
        settings, routers=[router], authenticate=keys.authenticate, configure_logs=False
    )
    reader = await keys.create("billing", name="reader", scopes=["invoices:*"])
    other = await keys.create("search", name="other", scopes=["search:read"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:

            async def get(key: str | None) -> httpx.Response:
                return await client.get("/invoices", headers={"X-API-Key": key} if key else {})

            ok = await get(reader.key)
            assert ok.status_code == 200
            assert ok.json() == {"for": "billing", "key": reader.record.id}
            for response, status in (
                (await get(other.key), 403),
                (await get(None), 401),
                (await get("tfk_nonsense"), 401),
            ):
                assert response.status_code == status
                assert response.headers["content-type"] == "application/problem+json"
            refused = await get("tfk_nonsense")
            assert refused.headers["www-authenticate"].startswith("ApiKey")
            await keys.revoke(reader.record.id)
            assert (await get(reader.key)).status_code == 401
