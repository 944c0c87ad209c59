"""The auth extension end to end: login, refresh, logout, sessions with CSRF, JWKS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends

from tenfold import CoreSettings, Principal, Settings, create_app
from tenfold.auth import AuthExtension, AuthSettings, Users, require

FAST_HASH = {"password_time_cost": 1, "password_memory_cost": 8, "password_parallelism": 1}
PASSWORD = "correct horse battery"


def settings(tmp_path: Path, **auth: Any) -> CoreSettings:
    composed = CoreSettings.compose([*Settings.sections.items(), ("auth", AuthSettings)])
    return composed.load(
        app={"name": "authtest"},
        db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"},
        auth={**FAST_HASH, **auth},
    )


router = APIRouter()


@router.get("/private")
async def private(principal: Principal = Depends(require("notes:read"))) -> dict[str, Any]:
    return {"id": principal.id, "kind": principal.kind}


@router.post("/private")
async def private_write(principal: Principal = Depends(require("notes:write"))) -> dict:
    return {"written_by": principal.id}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings(tmp_path),
        extensions=[AuthExtension(roles={"reader": ["notes:read", "notes:write"]})],
        routers=[router],
        configure_logs=False,
    )
    async with app.router.lifespan_context(app):
        users = app.state.tenfold.get(Users)
        await users.create("ann", PASSWORD, roles=["reader"])
        await users.create("bob", PASSWORD)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
            yield c


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["request_id"]
    return body


async def login(client: httpx.AsyncClient, username: str = "ann") -> dict[str, Any]:
    response = await client.post("/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


async def test_login_then_a_bearer_token_reaches_a_guarded_route(client: httpx.AsyncClient) -> None:
    """A password login gives an access token that the authentication slot accepts."""
    tokens = await login(client)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    seen = await client.get("/private", headers=auth)
    assert seen.status_code == 200
    assert seen.json()["kind"] == "user"
    assert seen.headers["cache-control"] == "private, no-store"
    me = (await client.get("/auth/me", headers=auth)).json()
    assert me["roles"] == ["reader"]


async def test_wrong_password_and_unknown_user_are_the_same_401(client: httpx.AsyncClient) -> None:
    wrong = await client.post("/auth/token", json={"username": "ann", "password": "nope"})
    unknown = await client.post("/auth/token", json={"username": "zed", "password": "nope"})
    assert problem(wrong, 401)["detail"] == problem(unknown, 401)["detail"]


async def test_anonymous_and_unprivileged_callers(client: httpx.AsyncClient) -> None:
    """No credentials: 401 with a challenge; a user without the permission: 403."""
    anonymous = await client.get("/private")
    problem(anonymous, 401)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    bob = await login(client, "bob")
    problem(
        await client.get("/private", headers={"Authorization": f"Bearer {bob['access_token']}"}),
        403,
    )
    bad = await client.get("/private", headers={"Authorization": "Bearer not-a-token"})
    assert problem(bad, 401)["type"].endswith("invalid-token")


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    tokens = await login(client)
    fresh = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert fresh.status_code == 200
    newer = fresh.json()
    assert newer["refresh_token"] != tokens["refresh_token"]
    # The grace window (10 s by default) covers a retry; the family survives it.
    again = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 200


async def test_logout_revokes_and_logout_all_ends_every_session(
    client: httpx.AsyncClient,
) -> None:
    first, second = await login(client), await login(client)
    out = await client.post("/auth/logout", json={"refresh_token": first["refresh_token"]})
    assert out.status_code == 204
    gone = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    problem(gone, 401)
    auth = {"Authorization": f"Bearer {second['access_token']}"}
    assert (await client.post("/auth/logout-all", headers=auth)).status_code == 204
    ended = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    problem(ended, 401)


async def test_a_login_body_with_unknown_fields_is_422(client: httpx.AsyncClient) -> None:
    body = {"username": "ann", "password": PASSWORD, "role": "admin"}
    problem(await client.post("/auth/token", json=body), 422)


async def test_browser_session_cookies_and_csrf(client: httpx.AsyncClient) -> None:
    """A browser login sets HttpOnly cookies; an unsafe request needs the Origin and the
    CSRF token; a safe one needs neither."""
    started = await client.post("/auth/session", json={"username": "ann", "password": PASSWORD})
    assert started.status_code == 200
    csrf = started.json()["csrf_token"]
    cookies = started.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("tenfold_session="))
    assert "HttpOnly" in session
    assert "SameSite=lax" in session
    assert (await client.get("/private")).status_code == 200
    origin = {"Origin": "http://app.test"}
    problem(await client.post("/private", headers=origin), 403)  # no token
    foreign = {"Origin": "https://evil.example", "X-CSRF-Token": csrf}
    problem(await client.post("/private", headers=foreign), 403)
    ok = await client.post("/private", headers={**origin, "X-CSRF-Token": csrf})
    assert ok.status_code == 200
    assert ok.json() == {"written_by": ok.json()["written_by"]}
    refreshed = await client.post(
        "/auth/refresh", headers={**origin, "X-CSRF-Token": csrf}, json={}
    )
    assert refreshed.status_code == 204
    assert (await client.get("/private")).status_code == 200
    ended = await client.request(
        "DELETE", "/auth/session", headers={**origin, "X-CSRF-Token": csrf}
    )
    assert ended.status_code == 204
    problem(await client.get("/private"), 401)


async def test_jwks_serves_public_keys_only(client: httpx.AsyncClient) -> None:
    jwks = await client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    (key,) = jwks.json()["keys"]
    assert key["kty"] == "OKP"
    assert "d" not in key
    assert key["kid"]
