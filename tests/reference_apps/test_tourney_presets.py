"""The tournament app's presets (apps/tourney/presets.py): its TTL table and its rate limits."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from apps.tourney.presets import (
    CACHE_NAMESPACES,
    RATE_LIMITS,
    cache_settings,
    rate_limit_policies,
    rate_limits,
)
from tenfold import Settings, create_app
from tenfold.cache import Cache, CacheSettings
from tenfold.ratelimit import MemoryBackend, RateLimitMiddleware, Rule, parse_networks
from tenfold.testing import ManualClock, app_client
from tenfold.web import AuthenticationMiddleware, install_problem_handlers


def test_cache_namespaces_follow_the_plan() -> None:
    """Sessions 30 min, tournaments 5 min, leaderboards 5 s, profiles 1 h, match results forever."""
    table = {name: (p.ttl, p.stale_ttl) for name, p in CACHE_NAMESPACES.items()}
    assert table == {
        "session": (1800, 0),
        "tournament": (300, 60),
        "leaderboard": (5, 5),
        "profile": (3600, 300),
        "immutable": (None, None),
    }


def test_the_platform_declares_no_namespace() -> None:
    """tenfold's settings name no namespace: the app's names get the default TTL and window."""
    settings = CacheSettings()
    assert settings.namespaces == {}
    cache = Cache(settings)
    for name in CACHE_NAMESPACES:
        policy = cache.namespace(cache.key(name, 1))
        assert (policy.ttl, policy.stale_ttl) == (settings.default_ttl, settings.stale_ttl)


def test_cache_settings_add_the_table_and_keep_the_operators_values() -> None:
    """The table is added to the environment's settings; a namespace set there keeps its value."""
    base = CacheSettings.model_validate({"namespaces": {"leaderboard": 2, "llm": 86400}})
    settings = cache_settings(base)
    assert settings.namespaces["leaderboard"].ttl == 2
    assert settings.namespaces["llm"].ttl == 86400
    assert settings.namespaces["tournament"] == CACHE_NAMESPACES["tournament"]
    assert cache_settings().namespaces == dict(CACHE_NAMESPACES)


def test_sessions_are_never_served_stale_whatever_the_global_window() -> None:
    """A global stale window applies to undeclared namespaces, never to sessions."""
    cache = Cache(cache_settings(CacheSettings(stale_ttl=30)))
    assert cache.namespace(cache.key("session", "s1")).stale_ttl == 0
    assert cache.namespace(cache.key("tournament", 1)).stale_ttl == 60
    assert cache.namespace(cache.key("elsewhere", 1)).stale_ttl == 30


def test_rate_limits_follow_the_plan() -> None:
    """API 100/minute and media uploads 10/minute, per user and per address when anonymous
    (the WebSocket limits are realtime settings: test_websocket_limits.py)."""
    assert set(RATE_LIMITS) == {"api", "media_upload"}
    assert RATE_LIMITS["api"].rules == (Rule("100/minute"),)
    assert RATE_LIMITS["media_upload"].rules == (Rule("10/minute"),)
    scope = {"type": "http", "client": ("203.0.113.7", 5555), "headers": []}
    assert RATE_LIMITS["api"].key(scope) == "ip:203.0.113.7"


def test_policies_read_client_addresses_behind_trusted_proxies() -> None:
    """Built with the proxies' networks, the policies key on the address the proxy recorded."""
    policies = rate_limit_policies(parse_networks(["10.0.0.0/8"]))
    scope = {
        "type": "http",
        "client": ("10.0.0.2", 5555),
        "headers": [(b"x-forwarded-for", b"203.0.113.9")],
    }
    assert policies["api"].key(scope) == "ip:203.0.113.9"
    assert RATE_LIMITS["api"].key(scope) == "ip:10.0.0.2"


def _user_from_header(app: ASGIApp) -> AuthenticationMiddleware:
    return AuthenticationMiddleware(app, resolve=lambda c: c.headers.get("x-user"))


def _limited_app(clock: ManualClock) -> FastAPI:
    """``/api/...`` and ``/api/media`` behind the presets' limits, users from ``x-user``."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/api/tournaments")
    async def tournaments() -> list[int]:
        return []

    @app.post("/api/media")
    async def upload() -> dict[str, bool]:
        return {"ok": True}

    limits = rate_limits()
    app.add_middleware(
        RateLimitMiddleware,
        backend=MemoryBackend(clock=clock),
        default=limits.default,
        prefixes=limits.prefixes,
        routes=limits.routes,
    )
    app.add_middleware(_user_from_header)
    return app


async def test_uploads_count_per_user_against_both_limits() -> None:
    """The 11th upload of a minute is refused for that user only, and uploads spend API calls."""
    clock = ManualClock()
    transport = httpx.ASGITransport(app=_limited_app(clock), client=("203.0.113.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        alice, bob = {"x-user": "alice"}, {"x-user": "bob"}
        uploads = [(await c.post("/api/media", headers=alice)).status_code for _ in range(11)]
        assert uploads == [200] * 10 + [429]
        assert (await c.post("/api/media", headers=bob)).status_code == 200
        calls = await c.get("/api/tournaments", headers=alice)
        assert calls.headers["RateLimit-Remaining"] == str(100 - 11 - 1)
        clock.advance(6)  # 10/minute: one upload back every 6 s
        assert (await c.post("/api/media", headers=alice)).status_code == 200


def _built_app(embedded_settings: Settings) -> FastAPI:
    """An app built the way the presets' docstring shows, with a stub API."""
    router = APIRouter(prefix="/api")

    @router.get("/tournaments")
    async def tournaments() -> list[int]:
        return []

    @router.post("/media")
    async def upload() -> dict[str, bool]:
        return {"ok": True}

    settings = embedded_settings.model_copy(
        update={"cache": cache_settings(embedded_settings.cache)}
    )
    return create_app(settings, routers=[router], rate_limits=rate_limits(), configure_logs=False)


async def test_create_app_applies_the_presets(embedded_settings: Settings) -> None:
    """Through create_app the API answers with its 100/minute limit, uploads with their 10, and
    the app's cache resolves the plan's namespaces."""
    app = _built_app(embedded_settings)
    async with app_client(app) as client:
        api = await client.get("/api/tournaments")
        media = await client.post("/api/media")
        assert (api.status_code, api.headers["RateLimit-Limit"]) == (200, "100")
        assert (media.status_code, media.headers["RateLimit-Limit"]) == (200, "10")
        assert "RateLimit-Limit" not in (await client.get("/health")).headers
        cache = app.state.tenfold.get(Cache)
        assert cache.namespace(cache.key("leaderboard", 1)).ttl == 5
        assert cache.namespace(cache.key("immutable", 1)).ttl is None


def test_rate_limits_are_leased_when_shared_on_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Redis the app's limits are in lease mode, unless TENFOLD_RATELIMIT__MODE says
    otherwise; embedded (in memory) they stay exact. Settings only: nothing connects."""
    from apps.tourney.main import settings_with_presets

    for name in ("TENFOLD_REDIS__URL", "TENFOLD_REDIS__CLUSTER_NODES", "TENFOLD_RATELIMIT__MODE"):
        monkeypatch.delenv(name, raising=False)
    assert settings_with_presets().ratelimit.mode == "exact"
    monkeypatch.setenv("TENFOLD_REDIS__URL", "redis://127.0.0.1:9/0")
    assert settings_with_presets().ratelimit.mode == "lease"
    monkeypatch.setenv("TENFOLD_RATELIMIT__MODE", "exact")  # the operator's choice wins
    assert settings_with_presets().ratelimit.mode == "exact"
