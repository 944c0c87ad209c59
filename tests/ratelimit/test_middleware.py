"""RateLimitMiddleware on a FastAPI app: headers, 429s, keys, spoofing, multi-rule, Redis down."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Scope

from tenfold.ratelimit import (
    MemoryBackend,
    Policy,
    RateLimitMiddleware,
    RateLimitStats,
    RedisBackend,
    by_api_key,
    by_ip,
    by_route,
    by_user,
    composite,
    parse_networks,
    rate_limit,
)
from tenfold.testing import RedisServer
from tenfold.web import AuthenticationMiddleware, install_problem_handlers

from .conftest import FakeClock

PROXIES = parse_networks(["10.0.0.0/8"])


def UserFromHeader(app: ASGIApp) -> AuthenticationMiddleware:
    """Test auth: the authentication slot resolving the ``x-user`` header as the principal."""
    return AuthenticationMiddleware(app, resolve=lambda c: c.headers.get("x-user"))


def make_app(
    backend: object,
    default: Policy | None = None,
    prefixes: Mapping[str, Policy] | None = None,
    routes: Mapping[str, Policy] | None = None,
    marked: Policy | None = None,
) -> FastAPI:
    """An app with ``/items/{item_id}``, ``/open``, ``/closed`` and the limiter in front."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/open")
    @rate_limit(Policy("open", ["5/minute"], fail_open=True))
    async def open_() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/closed")
    @rate_limit(Policy("closed", ["5/minute"], fail_open=False))
    async def closed() -> dict[str, bool]:
        return {"ok": True}

    if marked is not None:

        @app.get("/marked")
        @rate_limit(marked)
        async def marked_() -> dict[str, bool]:
            return {"ok": True}

    app.add_middleware(
        RateLimitMiddleware,
        backend=backend,
        default=default,
        prefixes=prefixes,
        routes=routes,
    )
    app.add_middleware(UserFromHeader)
    return app


def client(app: FastAPI, peer: str = "203.0.113.7") -> httpx.AsyncClient:
    """An httpx client calling ``app`` in process from ``peer``."""
    transport = httpx.ASGITransport(app=app, client=(peer, 5555))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_headers_then_429_with_retry_after(clock: FakeClock) -> None:
    """Admitted responses carry RateLimit-*; past the limit a 429 problem has Retry-After."""
    app = make_app(MemoryBackend(clock=clock), default=Policy("api", ["3/minute"]))
    async with client(app) as c:
        seen = [await c.get("/items/1") for _ in range(3)]
        assert [r.status_code for r in seen] == [200, 200, 200]
        assert [r.headers["RateLimit-Remaining"] for r in seen] == ["2", "1", "0"]
        assert seen[0].headers["RateLimit-Limit"] == "3"
        assert seen[0].headers["RateLimit-Reset"] == "20"
        assert seen[2].headers["RateLimit-Reset"] == "60"
        refused = await c.get("/items/1")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["Retry-After"] == "20"
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert refused.json()["status"] == 429
        clock.advance(20)
        assert (await c.get("/items/1")).status_code == 200


async def test_per_user_and_per_ip_keys(clock: FakeClock) -> None:
    """by_user counts each user separately and anonymous requests per client address."""
    app = make_app(MemoryBackend(clock=clock), default=Policy("api", ["1/minute"], key=by_user()))
    async with client(app) as c, client(app, peer="198.51.100.1") as other:
        assert (await c.get("/items/1", headers={"x-user": "ann"})).status_code == 200
        assert (await c.get("/items/1", headers={"x-user": "ann"})).status_code == 429
        assert (await c.get("/items/1", headers={"x-user": "bob"})).status_code == 200
        assert (await c.get("/items/1")).status_code == 200
        assert (await c.get("/items/1")).status_code == 429
        assert (await other.get("/items/1")).status_code == 200


async def test_spoofed_forwarded_for_from_untrusted_peer(clock: FakeClock) -> None:
    """A spoofed X-Forwarded-For from an untrusted peer does not give a fresh key."""
    policy = Policy("api", ["1/minute"], key=by_ip(PROXIES))
    app = make_app(MemoryBackend(clock=clock), default=policy)
    async with client(app) as c:
        assert (await c.get("/items/1")).status_code == 200
        spoofed = await c.get("/items/1", headers={"x-forwarded-for": "1.2.3.4"})
        assert spoofed.status_code == 429


async def test_forwarded_for_from_trusted_proxy(clock: FakeClock) -> None:
    """Behind a trusted proxy the forwarded address is the key, never the left-most value."""
    policy = Policy("api", ["1/minute"], key=by_ip(PROXIES))
    app = make_app(MemoryBackend(clock=clock), default=policy)
    async with client(app, peer="10.0.0.5") as proxy:
        first = {"x-forwarded-for": "198.51.100.1"}
        assert (await proxy.get("/items/1", headers=first)).status_code == 200
        assert (await proxy.get("/items/1", headers=first)).status_code == 429
        other = {"x-forwarded-for": "198.51.100.2"}
        assert (await proxy.get("/items/1", headers=other)).status_code == 200
        spoof = {"x-forwarded-for": "6.6.6.6, 198.51.100.1"}
        assert (await proxy.get("/items/1", headers=spoof)).status_code == 429


async def test_multi_rule_all_or_nothing(clock: FakeClock) -> None:
    """With 2/second and 3/minute a refusal by one rule spends nothing of the other."""
    app = make_app(MemoryBackend(clock=clock), default=Policy("api", ["2/second", "3/minute"]))
    async with client(app) as c:
        first = await c.get("/items/1")
        assert first.headers["RateLimit-Limit"] == "2"  # 1 left of 2 is tighter than 2 of 3
        assert first.headers["RateLimit-Remaining"] == "1"
        assert (await c.get("/items/1")).status_code == 200
        assert (await c.get("/items/1")).status_code == 429  # the per-second rule refuses
        clock.advance(1)
        third = await c.get("/items/1")
        assert third.status_code == 200  # the refused request did not spend the minute's third
        assert third.headers["RateLimit-Limit"] == "3"
        assert third.headers["RateLimit-Remaining"] == "0"
        clock.advance(1)
        refused = await c.get("/items/1")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "18"


async def test_prefix_route_template_and_marker(clock: FakeClock) -> None:
    """Policies attach by path prefix, by route template and by the @rate_limit marker."""
    backend = MemoryBackend(clock=clock)
    app = make_app(
        backend,
        prefixes={"/items": Policy("items", ["2/minute"], key=by_route)},
        routes={"/items/{item_id}": Policy("item", ["5/minute"])},
        marked=Policy("marked", ["1/minute"]),
    )
    async with client(app) as c:
        one = await c.get("/items/1")
        assert one.headers["RateLimit-Remaining"] == "1"
        # by_route keys on the template, so another item shares the prefix policy's count.
        assert (await c.get("/items/2")).status_code == 200
        assert (await c.get("/items/3")).status_code == 429
        assert (await c.get("/marked")).status_code == 200
        assert (await c.get("/marked")).status_code == 429
        unlimited = await c.get("/nowhere")
        assert unlimited.status_code == 404
        assert "RateLimit-Limit" not in unlimited.headers


async def test_api_key_and_composite_keys(clock: FakeClock) -> None:
    """API keys count separately from each other; a composite key splits by each part."""
    key = composite(by_api_key(), by_route)
    app = make_app(MemoryBackend(clock=clock), default=Policy("api", ["1/minute"], key=key))
    async with client(app) as c:
        assert (await c.get("/items/1", headers={"x-api-key": "a"})).status_code == 200
        assert (await c.get("/items/2", headers={"x-api-key": "a"})).status_code == 429
        assert (await c.get("/items/1", headers={"x-api-key": "b"})).status_code == 200
        assert (await c.get("/open", headers={"x-api-key": "a"})).status_code == 200


async def test_wrapped_around_the_app_still_finds_routes(clock: FakeClock) -> None:
    """Wrapping a FastAPI app from outside still applies the @rate_limit marker of the route."""
    app = FastAPI()

    @app.get("/marked")
    @rate_limit(Policy("marked", ["1/minute"]))
    async def marked() -> dict[str, bool]:
        return {"ok": True}

    outer = RateLimitMiddleware(app, backend=MemoryBackend(clock=clock))
    transport = httpx.ASGITransport(app=outer, client=("203.0.113.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.get("/marked")).headers["RateLimit-Limit"] == "1"
        assert (await c.get("/marked")).status_code == 429


async def test_redis_down_fail_open_and_fail_closed(redis_server: RedisServer) -> None:
    """With Redis stopped a fail-closed route answers 503 problem+json, a fail-open one serves."""
    backend = RedisBackend.from_url(redis_server.url, socket_timeout=0.25, connect_timeout=0.25)
    app = make_app(backend)
    try:
        async with client(app) as c:
            up = await c.get("/closed")
            assert up.status_code == 200
            assert up.headers["RateLimit-Limit"] == "5"
            redis_server.stop()
            closed = await c.get("/closed")
            assert closed.status_code == 503
            assert closed.headers["content-type"] == "application/problem+json"
            assert closed.headers["Retry-After"] == "1"
            opened = await c.get("/open")
            assert opened.status_code == 200
            assert "RateLimit-Limit" not in opened.headers
        assert limiter_of(app).unavailable == {"closed": 1, "open": 1}
    finally:
        await backend.aclose()


def limiter_of(app: FastAPI) -> RateLimitMiddleware:
    """The RateLimitMiddleware instance in ``app``'s built middleware stack."""
    layer: object = app.middleware_stack
    while not isinstance(layer, RateLimitMiddleware):
        layer = layer.app  # type: ignore[attr-defined]
    return layer


def test_fail_open_by_route_kind() -> None:
    """By default reads fail open, writes fail closed, auth policies always closed."""
    default = Policy("api", ["5/minute"])
    login = Policy("login", ["5/minute"], auth=True)
    assert [default.fails_open(m) for m in ("GET", "HEAD", "OPTIONS", "POST", "DELETE")] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert not login.fails_open("GET")
    assert Policy("w", ["5/minute"], fail_open=True).fails_open("POST")
    assert not Policy("r", ["5/minute"], fail_open=False).fails_open("GET")


async def test_redis_down_defaults_by_route_kind(redis_server: RedisServer) -> None:
    """With Redis down a read serves, a write and an auth route answer 503; all are counted."""
    backend = RedisBackend.from_url(redis_server.url, socket_timeout=0.25, connect_timeout=0.25)
    stats = RateLimitStats(namespace="t")
    app = FastAPI()
    install_problem_handlers(app)

    @app.api_route("/things", methods=["GET", "POST"])
    async def things() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/session")
    @rate_limit(Policy("login", ["5/minute"], auth=True))
    async def session() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(
        RateLimitMiddleware, backend=backend, default=Policy("api", ["50/minute"]), stats=stats
    )
    try:
        async with client(app) as c:
            assert (await c.get("/things")).status_code == 200
            redis_server.stop()
            assert (await c.get("/things")).status_code == 200
            assert (await c.post("/things")).status_code == 503
            assert (await c.get("/session")).status_code == 503
        assert stats.counts == {
            ("api", "allowed"): 1,
            ("api", "unavailable"): 3,
            ("login", "unavailable"): 1,
        }
    finally:
        await backend.aclose()


async def test_decisions_are_exposed_as_metrics() -> None:
    """Allowed and limited decisions show in the collector's counter family."""
    app = make_app(MemoryBackend(), marked=Policy("m", ["1/minute"]))
    async with client(app) as c:
        await c.get("/marked")
        await c.get("/marked")
    registry = CollectorRegistry()
    registry.register(limiter_of(app).stats)
    name = "tenfold_ratelimit_decisions_total"
    assert registry.get_sample_value(name, {"policy": "m", "outcome": "allowed"}) == 1
    assert registry.get_sample_value(name, {"policy": "m", "outcome": "limited"}) == 1


async def test_custom_key_sees_the_matched_route(clock: FakeClock) -> None:
    """A custom key function gets scope["route"] even when no route has a policy of its own."""
    seen: list[object] = []

    def by_template(scope: Scope) -> str:
        seen.append(getattr(scope.get("route"), "path", None))
        return "t"

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.add_middleware(
        RateLimitMiddleware,
        backend=MemoryBackend(clock=clock),
        default=Policy("custom", ["5/minute"], key=by_template),
    )
    async with client(app) as c:
        assert (await c.get("/items/7")).status_code == 200
    assert seen == ["/items/{item_id}"]


async def test_routes_added_later_are_matched_for_their_markers(clock: FakeClock) -> None:
    """A route with @rate_limit added after the first request is still limited by its marker."""
    app = FastAPI()
    outer = RateLimitMiddleware(
        app,
        backend=MemoryBackend(clock=clock),
        default=Policy("ip", ["100/minute"], key=by_ip()),
    )
    transport = httpx.ASGITransport(app=outer, client=("203.0.113.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.get("/late")).status_code == 404

        @app.get("/late")
        @rate_limit(Policy("late", ["1/minute"]))
        async def late() -> dict[str, bool]:
            return {"ok": True}

        assert (await c.get("/late")).status_code == 200
        refused = await c.get("/late")
        assert refused.status_code == 429
        assert refused.headers["RateLimit-Limit"] == "1"
