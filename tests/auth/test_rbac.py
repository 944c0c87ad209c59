"""Roles and wildcards, resource grants on both databases, and the checks routes make."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI

from tenfold import (
    ConfigurationError,
    NotFound,
    Principal,
    Settings,
    create_app,
    platform_of,
    set_principal,
)
from tenfold._context import bind_principal, principal_var
from tenfold.auth._rbac import (
    Access,
    Grants,
    Roles,
    owned,
    permission_granted,
    require,
    require_on,
    visible,
)
from tenfold.db import Database

ROLES = Roles(
    {
        "admin": ["*"],
        "organiser": ["matches:*", "teams:read"],
        "player": ["matches:read"],
        "referee": ["matches:score:write"],
    }
)


# -- Roles ------------------------------------------------------------------------------


def test_roles_resolve_exact_permissions() -> None:
    """A role allows exactly the permissions it lists; unknown roles allow nothing."""
    assert ROLES.allows({"player"}, "matches:read")
    assert not ROLES.allows({"player"}, "matches:write")
    assert not ROLES.allows({"stranger"}, "matches:read")
    assert not ROLES.allows(set(), "matches:read")
    assert ROLES.permissions_of(["player", "organiser"]) == {
        "matches:read",
        "matches:*",
        "teams:read",
    }


def test_prefix_and_global_wildcards() -> None:
    """``matches:*`` covers every permission under ``matches:`` only; ``*`` covers all."""
    assert ROLES.allows({"organiser"}, "matches:write")
    assert ROLES.allows({"organiser"}, "matches:score:write")
    assert not ROLES.allows({"organiser"}, "matchesx:write")
    assert not ROLES.allows({"organiser"}, "teams:write")
    assert not ROLES.allows({"organiser"}, "matches")
    assert ROLES.allows({"admin"}, "anything:at:all")
    assert not ROLES.allows({"referee"}, "matches:score")
    assert ROLES.allows({"referee"}, "matches:score:write")


def test_permission_granted_applies_wildcards_to_scopes() -> None:
    """Scopes (an API key's permissions) match like a role's permissions."""
    assert permission_granted(["invoices:*"], "invoices:read")
    assert not permission_granted(["invoices:read"], "invoices:write")
    assert permission_granted({"*"}, "x:y")


@pytest.mark.parametrize(
    "mapping",
    [
        {"bad role": ["a:b"]},
        {"1admin": ["a:b"]},
        {"": ["a:b"]},
        {"ok": ["a b"]},
        {"ok": ["a:*:b"]},
        {"ok": ["*:read"]},
        {"ok": [""]},
        {"ok": "matches:read"},
        {"ok": ["x" * 200]},
    ],
)
def test_bad_roles_are_configuration_errors(mapping: dict[str, Any]) -> None:
    """A malformed role name or permission fails when the Roles are built."""
    with pytest.raises(ConfigurationError):
        Roles(mapping)


@pytest.mark.parametrize("permission", ["matches:*", "*", "", "a b", "x" * 200])
def test_require_refuses_wildcards_and_bad_names(permission: str) -> None:
    """A route requires one concrete permission: wildcards and bad names fail at build."""
    with pytest.raises(ConfigurationError):
        require(permission)


# -- grants ---------------------------------------------------------------------------


async def test_grants_are_per_resource(db: Database) -> None:
    """A role granted on one resource is held there and nowhere else; revoking removes it."""
    grants = Grants(db)
    assert await grants.grant("u1", "organiser", "tournament:42")
    assert not await grants.grant("u1", "organiser", "tournament:42")  # already held
    assert await grants.grant("u1", "player", "tournament:42")
    assert await grants.grant("u1", "organiser", "tournament:7")
    assert await grants.grant("u2", "player", "tournament:42")

    assert await grants.roles_on("u1", "tournament:42") == {"organiser", "player"}
    assert await grants.roles_on("u1", "tournament:8") == frozenset()
    assert await grants.roles_on("u2", "tournament:42") == {"player"}
    assert await grants.resources("u1", "organiser") == ["tournament:42", "tournament:7"]
    assert await grants.holders("tournament:42") == [
        ("u1", "organiser"),
        ("u1", "player"),
        ("u2", "player"),
    ]
    assert await grants.holders("tournament:42", "organiser") == [("u1", "organiser")]

    assert await grants.revoke("u1", "organiser", "tournament:42")
    assert not await grants.revoke("u1", "organiser", "tournament:42")
    assert await grants.roles_on("u1", "tournament:42") == {"player"}
    assert await grants.resources("u1", "organiser") == ["tournament:7"]


async def test_grant_arguments_are_checked(db: Database) -> None:
    """Empty ids, bad role names and oversized resources are refused before any query."""
    grants = Grants(db)
    with pytest.raises(ValueError):
        await grants.grant("", "player", "t:1")
    with pytest.raises(ValueError):
        await grants.grant("u1", "not a role", "t:1")
    with pytest.raises(ValueError):
        await grants.grant("u1", "player", "t" * 300)


async def test_access_combines_global_roles_grants_and_scopes(db: Database) -> None:
    """Global roles apply everywhere, grants on their resource only; a key has its scopes only."""
    grants = Grants(db)
    access = Access(ROLES, grants)
    await grants.grant("u1", "organiser", "tournament:42")
    await grants.grant("svc", "organiser", "tournament:42")
    user = Principal("u1", roles={"player"})
    assert await access.can(user, "matches:read")
    assert not await access.can(user, "matches:write")
    assert await access.can(user, "matches:write", "tournament:42")
    assert not await access.can(user, "matches:write", "tournament:43")
    assert await access.can(Principal("boss", roles={"admin"}), "matches:write", "tournament:43")
    assert not await access.can(None, "matches:read")
    # A user's scopes grant nothing.
    assert not await access.can(Principal("u3", scopes={"matches:write"}), "matches:write")

    key = Principal("u1", scopes={"matches:read"}, roles={"admin"}, kind="api_key")
    assert await access.can(key, "matches:read")
    # Neither the key's roles nor its owner's grants count.
    assert not await access.can(key, "teams:read")
    assert not await access.can(key, "matches:write", "tournament:42")

    service = Principal("svc", scopes={"teams:*"}, kind="service")
    assert await access.can(service, "teams:write")
    assert await access.can(service, "matches:write", "tournament:42")
    assert not await access.can(service, "matches:write", "tournament:1")


# -- owned and visible ----------------------------------------------------------------


@dataclass
class Match:
    id: int
    owner_id: str


async def test_owned_returns_ones_own_object_and_hides_others() -> None:
    """Its owner gets the object; a foreign one, None and anonymous callers get 404."""
    mine = Match(1, "u1")
    assert await owned(mine, Principal("u1")) is mine
    with pytest.raises(NotFound):
        await owned(Match(2, "u2"), Principal("u1"))
    with pytest.raises(NotFound):
        await owned(None, Principal("u1"))
    token = bind_principal(None)
    try:
        with pytest.raises(NotFound):
            await owned(mine)  # anonymous
        set_principal(Principal("u1"))
        assert await owned(mine) is mine  # the current principal by default
        assert await owned({"by": 1}, owner=lambda o: o["by"], principal=Principal("1"))
    finally:
        principal_var.reset(token)


async def test_owned_lets_a_permission_holder_through(db: Database) -> None:
    """With permission=, an admin (global or on the resource) may have foreign objects."""
    grants = Grants(db)
    access = Access(ROLES, grants)
    theirs = Match(2, "u2")
    admin = Principal("boss", roles={"admin"})
    assert await owned(theirs, admin, permission="matches:write", access=access) is theirs
    with pytest.raises(NotFound):
        await owned(theirs, Principal("u1"), permission="matches:write", access=access)
    await grants.grant("u1", "organiser", "tournament:42")
    got = await owned(
        theirs,
        Principal("u1"),
        permission="matches:write",
        resource="tournament:42",
        access=access,
    )
    assert got is theirs
    with pytest.raises(NotFound):
        await owned(None, admin, permission="matches:write", access=access)
    with pytest.raises(ConfigurationError):
        await owned(theirs, admin, permission="matches:write")


async def test_visible_limits_a_select_to_owned_rows(db: Database) -> None:
    """Owners see their rows, a bypass holder sees all, anonymous callers see none."""
    table = sa.Table(
        "visible_things",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.String(20)),
    )
    async with db.session() as session:
        await session.run_sync(lambda s: table.create(s.connection()))
        await session.execute(
            sa.insert(table), [{"id": 1, "owner_id": "u1"}, {"id": 2, "owner_id": "u2"}]
        )
    access = Access(ROLES)

    async def ids(principal: Principal | None) -> list[int]:
        query = visible(
            sa.select(table.c.id).order_by(table.c.id),
            principal,
            table.c.owner_id,
            bypass="things:read_all",
            access=access,
        )
        async with db.session() as session:
            return list((await session.execute(query)).scalars())

    assert await ids(Principal("u1")) == [1]
    assert await ids(Principal("boss", roles={"admin"})) == [1, 2]
    assert await ids(None) == []


# -- over HTTP --------------------------------------------------------------------------


def principal_from_headers(connection: Any) -> Principal | None:
    """X-User: id, X-Roles: comma-separated roles."""
    user = connection.headers.get("x-user")
    if not user:
        return None
    roles = {r for r in connection.headers.get("x-roles", "").split(",") if r}
    return Principal(user, roles=roles)


def as_user(user: str, *roles: str) -> dict[str, str]:
    return {"X-User": user, "X-Roles": ",".join(roles)}


def build_app(tmp_path: Path, access: Access | None, *, explicit: bool) -> FastAPI:
    given = access if explicit else None
    router = APIRouter()

    @router.post("/matches", dependencies=[Depends(require("matches:write", access=given))])
    async def create_match() -> dict[str, str]:
        return {"created": "yes"}

    @router.get("/tournaments/{tid}/admin")
    async def tournament_admin(
        tid: int,
        who: Principal = Depends(
            require_on("tournaments:admin", lambda tid: f"tournament:{tid}", access=given)
        ),
    ) -> dict[str, Any]:
        return {"tournament": tid, "admin": who.id}

    settings = Settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})  # type: ignore[arg-type]
    app = create_app(
        settings, routers=[router], authenticate=principal_from_headers, configure_logs=False
    )
    if access is not None and not explicit:
        platform_of(app).provide(access)
    return app


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status


HTTP_ROLES = Roles({"organiser": ["matches:write"], "tadmin": ["tournaments:admin"]})


@pytest.mark.parametrize("explicit", [True, False], ids=["explicit", "platform"])
async def test_require_answers_401_403_and_200(
    db: Database, tmp_path: Path, explicit: bool
) -> None:
    """Anonymous: 401 with a challenge; lacking the permission: 403; holding it: 200."""
    app = build_app(tmp_path, Access(HTTP_ROLES, Grants(db)), explicit=explicit)
    async with serving(app) as client:
        anonymous = await client.post("/matches")
        assert_problem(anonymous, 401)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert_problem(await client.post("/matches", headers=as_user("u1", "player")), 403)
        allowed = await client.post("/matches", headers=as_user("u1", "organiser"))
        assert allowed.status_code == 200
        assert allowed.json() == {"created": "yes"}


@pytest.mark.parametrize("explicit", [True, False], ids=["explicit", "platform"])
async def test_require_on_hides_foreign_resources(
    db: Database, tmp_path: Path, explicit: bool
) -> None:
    """A tournament admin reaches their tournament's admin route; another's is a 404."""
    grants = Grants(db)
    await grants.grant("u1", "tadmin", "tournament:42")
    app = build_app(tmp_path, Access(HTTP_ROLES, grants), explicit=explicit)
    async with serving(app) as client:
        own = await client.get("/tournaments/42/admin", headers=as_user("u1"))
        assert own.status_code == 200
        assert own.json() == {"tournament": 42, "admin": "u1"}
        foreign = await client.get("/tournaments/43/admin", headers=as_user("u1"))
        assert_problem(foreign, 404)
        other_user = await client.get("/tournaments/42/admin", headers=as_user("u2"))
        assert_problem(other_user, 404)
        assert_problem(await client.get("/tournaments/42/admin"), 401)
        # A global holder of the permission reaches every tournament.
        everywhere = await client.get("/tournaments/43/admin", headers=as_user("u9", "tadmin"))
        assert everywhere.status_code == 200


async def test_require_without_access_anywhere_is_a_configuration_error(tmp_path: Path) -> None:
    """No Access passed and none on the platform: a 500, never an open door."""
    app = build_app(tmp_path, None, explicit=False)
    async with serving(app) as client:
        response = await client.post("/matches", headers=as_user("u1", "organiser"))
    assert response.status_code == 500
