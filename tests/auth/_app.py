"""An app with ``AuthExtension`` for the per-user and login-limit tests.

``running(settings)`` starts it, creates ``ann`` and ``bob`` (role ``reader``), and
yields a ``Kit``: the client (from an untrusted peer unless told), the users, and
one credential header per user, as a real client would send it.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI

from tenfold import CoreSettings, Principal, Settings, create_app, current_principal
from tenfold._platform import Platform
from tenfold.auth import AccessTokens, ApiKeys, AuthExtension, AuthSettings, User, Users, require
from tenfold.httpcache import cache_response
from tenfold.idempotency import IdempotentRoute, idempotency_key

FAST_HASH = {"password_time_cost": 1, "password_memory_cost": 8, "password_parallelism": 1}
PASSWORD = "correct horse battery"
ROLES = {"reader": ["notes:read", "reports:read"]}
#: The client's own address: not a trusted proxy, so its X-Forwarded-For is ignored.
PEER = "203.0.113.7"
#: The proxies the app trusts (TENFOLD_HTTP__TRUSTED_PROXIES).
PROXIES = ["10.0.0.0/8"]
#: The users every app starts with.
NAMES = ("ann", "bob")

#: A fresh number per handler run, so a body says which run made it.
RUNS = itertools.count(1)

router = APIRouter()


def _who() -> dict[str, Any]:
    principal = current_principal()
    if principal is None:
        return {"user": None, "kind": None}
    return {"user": principal.id, "kind": principal.kind}


@router.get("/limited/ping")
async def ping() -> dict[str, Any]:
    """Under the ``/limited`` prefix policy of the tests' settings."""
    return _who()


@router.get("/me")
@cache_response(max_age=60, per_user=True)
async def me() -> dict[str, Any]:
    return {**_who(), "run": next(RUNS)}


@router.get("/reports")
@cache_response(max_age=60, per_user=True)
async def reports(principal: Principal = Depends(require("reports:read"))) -> dict[str, Any]:
    return {"user": principal.id, "secret": "quarterly figures", "run": next(RUNS)}


writes = APIRouter(route_class=IdempotentRoute)


@writes.post("/send", status_code=202, dependencies=[Depends(idempotency_key(), scope="function")])
async def send(body: dict[str, str]) -> dict[str, Any]:
    return {**_who(), "text": body.get("text"), "run": next(RUNS)}


def settings(tmp_path: Path, **sections: Any) -> CoreSettings:
    """The app's settings: SQLite in ``tmp_path``, fast argon2, trusted ``PROXIES``."""
    composed = CoreSettings.compose([*Settings.sections.items(), ("auth", AuthSettings)])
    auth = {**FAST_HASH, **sections.pop("auth", {})}
    http = {"trusted_proxies": PROXIES, **sections.pop("http", {})}
    return composed.load(
        app={"name": "peruser"},
        db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"},
        auth=auth,
        http=http,
        **sections,
    )


def redis_sections(url: str, ns: str | None = None, **ratelimit: Any) -> dict[str, Any]:
    """Sections putting the limiter (and the caches) on the Redis at ``url``, under ``ns``."""
    ns = ns or "t" + uuid.uuid4().hex[:12]
    return {
        "redis": {"url": url},
        "ratelimit": {"backend": "redis", "prefix": f"{ns}:rl:", **ratelimit},
        "httpcache": {"namespace": f"{ns}-http"},
        "idempotency": {"prefix": f"{ns}:idem:"},
    }


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    """Settings sections merged one level deep (``ratelimit`` from two places, say)."""
    out: dict[str, Any] = {}
    for part in parts:
        for section, values in part.items():
            out[section] = {**out.get(section, {}), **values}
    return out


@dataclass
class Kit:
    app: FastAPI
    platform: Platform
    client: httpx.AsyncClient
    users: dict[str, User]

    def from_peer(self, peer: str) -> httpx.AsyncClient:
        """Another client of the same app, connecting from ``peer``."""
        transport = httpx.ASGITransport(app=self.app, client=(peer, 5555))
        return httpx.AsyncClient(transport=transport, base_url="http://app.test")

    def id(self, name: str) -> str:
        return self.users[name].id

    async def login(self, name: str) -> dict[str, str]:
        """``name``'s bearer header, from a password login at ``POST /auth/token``."""
        response = await self.client.post(
            "/auth/token", json={"username": name, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def bearer(self, name: str) -> dict[str, str]:
        """``name``'s bearer header, from a token issued directly (no login spent)."""
        token = self.platform.get(AccessTokens).issue(self.users[name].principal())
        return {"Authorization": f"Bearer {token}"}

    async def api_key(self, name: str, scopes: list[str]) -> str:
        """A new API key owned by ``name``."""
        keys = self.platform.get(ApiKeys)
        made = await keys.create(self.id(name), name=f"{name}-key", scopes=scopes)
        return made.key


@asynccontextmanager
async def running(config: CoreSettings, peer: str = PEER) -> AsyncIterator[Kit]:
    app = create_app(
        config,
        extensions=[AuthExtension(roles=ROLES)],
        routers=[router, writes],
        configure_logs=False,
    )
    async with app.router.lifespan_context(app):
        platform: Platform = app.state.tenfold
        users = platform.get(Users)
        made = {name: await users.create(name, PASSWORD, roles=["reader"]) for name in NAMES}
        transport = httpx.ASGITransport(app=app, client=(peer, 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
            yield Kit(app, platform, client, made)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body
