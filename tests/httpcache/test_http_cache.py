"""HTTP response caching: hits before routing, ETag/304, Cache-Control, Vary, auth and poisoning.

Every test runs against both stores: the embedded ``LocalLRU`` and the
harness's real Redis (``BackendResponseStore``). The app sits behind the stack
the platform uses (observability outermost, then the authentication slot
resolving ``X-Test-User`` and ``ConsistencyMiddleware``, then the cache),
driven by ``httpx.ASGITransport``.
"""

from __future__ import annotations

import re
import tracemalloc
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import AfterValidator
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from tenfold import current_user_id
from tenfold.cache._cache import Cache
from tenfold.cache._redis import RedisBackend
from tenfold.db import ConsistencyMiddleware
from tenfold.httpcache._middleware import HttpCacheMiddleware
from tenfold.httpcache._policy import cache_response
from tenfold.httpcache._request import _normalized_query, _query_memo
from tenfold.httpcache._response import etag_matches
from tenfold.httpcache._store import (
    BackendResponseStore,
    CacheResponseStore,
    LocalResponseStore,
)
from tenfold.observability import Metrics, ObservabilityMiddleware
from tenfold.testing import ManualClock
from tenfold.web import AuthenticationMiddleware


def header_user(connection: HTTPConnection) -> str | None:
    """The authentication slot's resolver here: the principal is ``X-Test-User``."""
    return connection.headers.get("x-test-user")


def HeaderAuth(app: ASGIApp) -> AuthenticationMiddleware:
    return AuthenticationMiddleware(app, resolve=header_user)


#: Validations of ``ItemId`` so far, across tests (a Harness keeps its own baseline).
VALIDATIONS: Counter[str] = Counter()


def _count_validation(value: int) -> int:
    VALIDATIONS["item_id"] += 1
    return value


ItemId = Annotated[int, AfterValidator(_count_validation)]


def build_app(calls: Counter[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/items/special")  # registered first, so it shadows /items/{item_id} here
    async def special() -> dict[str, Any]:
        calls["special"] += 1
        return {"special": True}

    @app.get("/items/{item_id}")
    @cache_response(max_age=60)
    async def item(item_id: ItemId, q: str = "", tags: list[str] = Query([])) -> dict[str, Any]:
        calls["item"] += 1
        return {"id": item_id, "q": q, "tags": tags, "call": calls["item"]}

    @app.get("/links")
    @cache_response(max_age=60)
    async def links(request: Request) -> dict[str, Any]:
        calls["links"] += 1
        return {
            "self": str(request.url_for("links")),
            "forwarded_host": request.headers.get("x-forwarded-host"),
        }

    @app.get("/dashboard")
    @cache_response(max_age=60)
    async def dashboard(request: Request) -> dict[str, Any]:
        calls["dashboard"] += 1
        return {"auth": request.headers.get("authorization"), "call": calls["dashboard"]}

    @app.get("/me")
    @cache_response(max_age=60, per_user=True)
    async def me(request: Request) -> dict[str, Any]:
        calls["me"] += 1
        return {"user": current_user_id() or request.headers.get("authorization")}

    @app.get("/greeting")
    @cache_response(max_age=60, vary=("Accept-Language",))
    async def greeting(request: Request) -> dict[str, Any]:
        calls["greeting"] += 1
        return {"hello": request.headers.get("accept-language", "en")}

    @app.get("/banner")
    @cache_response(max_age=60)
    async def banner(response: Response) -> dict[str, str]:
        calls["banner"] += 1
        response.set_cookie("visited", "yes")
        return {"banner": "welcome"}

    @app.get("/volatile")
    @cache_response(max_age=60)
    async def volatile(response: Response) -> dict[str, int]:
        calls["volatile"] += 1
        response.headers["Cache-Control"] = "no-store"
        return {"call": calls["volatile"]}

    @app.get("/by-agent")
    @cache_response(max_age=60)
    async def by_agent(request: Request, response: Response) -> dict[str, Any]:
        calls["by_agent"] += 1
        response.headers["Vary"] = "User-Agent"
        return {"agent": request.headers.get("user-agent")}

    @app.get("/missing/{n}")
    @cache_response(max_age=60)
    async def missing(n: int) -> dict[str, int]:
        calls["missing"] += 1
        raise HTTPException(status_code=404, detail="no such thing")

    @app.get("/assets/{name}")
    @cache_response(immutable=True)
    async def asset(name: str) -> PlainTextResponse:
        calls["asset"] += 1
        return PlainTextResponse(f"/* {name} */", media_type="text/css")

    @app.get("/scores")
    @cache_response(max_age=10, stale_while_revalidate=30)
    async def scores() -> dict[str, int]:
        calls["scores"] += 1
        return {"version": calls["scores"]}

    @app.get("/big")
    @cache_response(max_age=60)
    async def big() -> PlainTextResponse:
        calls["big"] += 1
        return PlainTextResponse("x" * 5000)

    api = APIRouter(prefix="/api")

    @api.get("/things/{thing_id}")
    @cache_response(max_age=60, s_maxage=300)
    async def thing(thing_id: int) -> dict[str, int]:
        calls["thing"] += 1
        return {"thing": thing_id}

    app.include_router(api)
    sub = FastAPI()

    @sub.get("/ping/{n}")
    @cache_response(max_age=60)
    async def ping(n: int) -> dict[str, int]:
        calls["ping"] += 1
        return {"pong": n}

    app.mount("/sub", sub)

    async def opaque(scope: Scope, receive: Receive, send: Send) -> None:
        calls["opaque"] += 1
        await PlainTextResponse("opaque")(scope, receive, send)

    app.mount("/raw", opaque)
    return app


class Harness:
    """One app behind the platform's middleware order, with its counters."""

    def __init__(self, **options: Any) -> None:
        self.calls: Counter[str] = Counter()
        self._validated = VALIDATIONS["item_id"]
        self.clock = ManualClock(1_700_000_000.0)  # a wall clock
        self.metrics = Metrics()
        self.cache = HttpCacheMiddleware(
            build_app(self.calls),
            namespace=f"http-{uuid.uuid4().hex[:12]}",  # Redis is shared between tests
            clock=self.clock,
            **options,
        )
        stack = ObservabilityMiddleware(
            HeaderAuth(ConsistencyMiddleware(self.cache)), metrics=self.metrics, access_log=False
        )
        transport = httpx.ASGITransport(app=stack)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://app.test")

    def validations(self) -> int:
        return VALIDATIONS["item_id"] - self._validated

    async def get(self, url: str, **headers: str) -> httpx.Response:
        return await self.client.get(url, headers=_headers(headers))


def _headers(headers: dict[str, str]) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in headers.items()}


@pytest.fixture(params=["local", "redis", "redis+local", "cache"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """The middleware's store options: in-process, Redis, Redis with a local tier, or the
    two-level ``Cache`` on Redis."""
    if request.param == "local":
        yield {"store": LocalResponseStore()}
        return
    backend = RedisBackend.from_url(request.getfixturevalue("redis_server").url)
    if request.param == "cache":
        cache = Cache(backend=backend)
        await cache.start()
        yield {"store": CacheResponseStore(cache)}
        await cache.stop()  # closes the backend
        return
    local = LocalResponseStore() if request.param == "redis+local" else None
    yield {"store": BackendResponseStore(backend), "local": local}
    await backend.aclose()


@pytest.fixture
async def h(stores: dict[str, Any]) -> AsyncIterator[Harness]:
    harness = Harness(**stores)
    yield harness
    await harness.client.aclose()


async def test_second_get_is_a_hit_without_handler_or_validation(h: Harness) -> None:
    """A repeated GET is answered from the cache: the handler and validation run once."""
    first = await h.get("/items/7")
    second = await h.get("/items/7")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json() == {"id": 7, "q": "", "tags": [], "call": 1}
    assert h.calls["item"] == 1
    assert h.validations() == 1
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["age"] == "0"
    assert h.cache.stats()["hits"] == 1
    assert h.cache.stats()["stores"] == 1


async def test_matching_etag_gets_304_with_validators_and_request_id(h: Harness) -> None:
    """If-None-Match with the current ETag gets a bodiless 304 with ETag, Cache-Control and
    the request id."""
    etag = (await h.get("/items/1")).headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    response = await h.get("/items/1", if_none_match=etag, x_request_id="probe-1")
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["x-request-id"] == "probe-1"
    assert "content-type" not in response.headers
    assert h.cache.stats()["not_modified"] == 1


async def test_if_none_match_lists_weak_tags_and_star(h: Harness) -> None:
    """A weak or listed tag matches by weak comparison, * matches anything, others get 200."""
    etag = (await h.get("/items/2")).headers["etag"]
    listed = f'"nope", W/{etag}, "other"'
    assert (await h.get("/items/2", if_none_match=listed)).status_code == 304
    assert (await h.get("/items/2", if_none_match="*")).status_code == 304
    assert (await h.get("/items/2", if_none_match='"stale"')).status_code == 200
    assert etag_matches(b'"a,b", "c"', b'"a,b"')
    assert not etag_matches(b'"a"', b'"a,b"')


async def test_304_on_a_miss_when_the_fresh_body_matches(h: Harness) -> None:
    """An authenticated request is never served from the cache but still gets a 304."""
    etag = (await h.get("/api/things/3")).headers["etag"]
    response = await h.get("/api/things/3", if_none_match=etag, authorization="Bearer t")
    assert response.status_code == 304
    assert response.headers["cache-control"] == "private, no-cache"
    assert h.calls["thing"] == 2


async def test_no_shared_caching_of_authenticated_responses(h: Harness) -> None:
    """Authenticated requests to a shared route neither read nor fill the shared entry."""
    alice = await h.get("/dashboard", authorization="Bearer alice")
    assert alice.json()["auth"] == "Bearer alice"
    assert alice.headers["cache-control"] == "private, no-cache"
    anonymous = await h.get("/dashboard")
    assert anonymous.json() == {"auth": None, "call": 2}
    assert (await h.get("/dashboard")).json() == {"auth": None, "call": 2}
    bob = await h.get("/dashboard", authorization="Bearer bob")
    assert bob.json() == {"auth": "Bearer bob", "call": 3}
    session = await h.get("/dashboard", cookie="session=abc")
    assert session.json()["call"] == 4
    by_context = await h.get("/dashboard", x_test_user="carol")
    assert by_context.json()["call"] == 5
    assert h.cache.stats()["stores"] == 1


async def test_per_user_route_keys_by_user(h: Harness) -> None:
    """A per-user route caches each user's body under that user and never serves it to another."""
    assert (await h.get("/me", authorization="Bearer alice")).json() == {"user": "Bearer alice"}
    assert (await h.get("/me", authorization="Bearer bob")).json() == {"user": "Bearer bob"}
    again = await h.get("/me", authorization="Bearer alice")
    assert again.json() == {"user": "Bearer alice"}
    assert again.headers["cache-control"] == "private, max-age=60"
    assert again.headers["vary"] == "Authorization, Cookie"
    assert h.calls["me"] == 2
    carol = await h.get("/me", x_test_user="carol", authorization="Bearer alice")
    assert carol.json() == {"user": "carol"}  # the context's user id wins over the token
    assert (await h.get("/me", x_test_user="carol")).json() == {"user": "carol"}
    assert h.calls["me"] == 3


async def test_unkeyed_forwarded_host_does_not_poison_others(h: Harness) -> None:
    """A response built from a forged X-Forwarded-Host or Host is never served to others."""
    forged = await h.get("/links", x_forwarded_host="evil.example")
    assert forged.json()["forwarded_host"] == "evil.example"
    clean = await h.get("/links")
    assert "evil.example" not in clean.text
    assert clean.json() == {"self": "http://app.test/links", "forwarded_host": None}
    host = await h.get("/links", host="evil.example")
    assert host.json()["self"] == "http://evil.example/links"
    assert "evil.example" not in (await h.get("/links")).text
    assert (await h.get("/links", x_forwarded_host="evil.example")).json() == forged.json()
    assert h.calls["links"] == 3


async def test_method_override_and_consistency_token_bypass(h: Harness) -> None:
    """Method-override headers and a read-your-writes token make the cache step aside."""
    await h.get("/items/4")
    await h.get("/items/4", x_http_method_override="DELETE")
    await h.get("/items/4", x_consistency_token="0/16B3740")
    assert h.calls["item"] == 3
    assert h.cache.stats()["bypassed"] == 2


async def test_vary_header_selects_the_representation(h: Harness) -> None:
    """Declared Vary headers are keyed and listed in Vary."""
    english = await h.get("/greeting", accept_language="en")
    german = await h.get("/greeting", accept_language="de")
    assert english.json() == {"hello": "en"}
    assert german.json() == {"hello": "de"}
    assert (await h.get("/greeting", accept_language="en")).json() == {"hello": "en"}
    assert (await h.get("/greeting", accept_language="de")).json() == {"hello": "de"}
    assert english.headers["vary"] == "Accept-Language"
    assert h.calls["greeting"] == 2


async def test_handler_vary_beyond_the_key_is_not_stored(h: Harness) -> None:
    """A handler that varies on an undeclared header is not stored, and Vary says so."""
    first = await h.get("/by-agent", user_agent="a")
    second = await h.get("/by-agent", user_agent="b")
    assert second.json() == {"agent": "b"}
    assert first.headers["vary"] == "User-Agent"
    assert h.calls["by_agent"] == 2


async def test_set_cookie_responses_are_not_stored(h: Harness) -> None:
    """A response that sets a cookie is never stored."""
    first = await h.get("/banner")
    assert "set-cookie" in first.headers
    assert "set-cookie" in (await h.get("/banner")).headers
    assert h.calls["banner"] == 2
    assert h.cache.stats()["stores"] == 0


async def test_handler_no_store_is_respected(h: Harness) -> None:
    """A handler's Cache-Control: no-store wins over the policy and is not stored."""
    first = await h.get("/volatile")
    assert first.headers["cache-control"] == "no-store"
    assert (await h.get("/volatile")).json() == {"call": 2}


async def test_non_200_responses_are_not_stored(h: Harness) -> None:
    """404s and validation errors go to the handler every time and carry no cache headers."""
    for _ in range(2):
        response = await h.get("/missing/1")
        assert response.status_code == 404
        assert "cache-control" not in response.headers
        assert "etag" not in response.headers
        assert (await h.get("/items/not-a-number")).status_code == 422
    assert h.calls["missing"] == 2
    assert h.cache.stats()["stores"] == 0


async def test_immutable_assets_are_cached_for_a_year(h: Harness) -> None:
    """An immutable route says public, max-age=31536000, immutable."""
    response = await h.get("/assets/app.3f9a.css")
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (await h.get("/assets/app.3f9a.css")).text == "/* app.3f9a.css */"
    assert h.calls["asset"] == 1


async def test_query_parameter_order_is_normalised(h: Harness) -> None:
    """Reordered parameters share an entry; reordered repeats of one name do not."""
    first = await h.get("/items/5?q=x&tags=a&tags=b")
    same = await h.get("/items/5?tags=a&q=x&tags=b")
    assert same.json() == first.json()
    assert h.calls["item"] == 1
    swapped = await h.get("/items/5?tags=b&q=x&tags=a")
    assert swapped.json()["tags"] == ["b", "a"]
    assert h.calls["item"] == 2


async def test_distinct_long_queries_do_not_grow_the_cache_key_memo() -> None:
    """Hundreds of distinct 60 KB query strings (18 MB in all) leave next to nothing held by
    the cache key's query normalization: a client choosing query strings cannot grow a
    worker through it. (The cached responses themselves are bounded by the store.)"""
    harness = Harness(store=LocalResponseStore())
    only_keys = [
        tracemalloc.Filter(True, "*/tenfold/httpcache/_request.py"),
        tracemalloc.Filter(True, "*/tenfold/cache/_keys.py"),
    ]
    try:
        await harness.get("/items/5?warm=up")
        tracemalloc.start()
        before = tracemalloc.take_snapshot().filter_traces(only_keys)
        for n in range(300):
            response = await harness.get(f"/items/5?q={n:05d}{'x' * 60_000}")
            assert response.status_code == 200
        after = tracemalloc.take_snapshot().filter_traces(only_keys)
        tracemalloc.stop()
        held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        assert held < 1 << 20, f"{held} bytes held after 18 MB of distinct queries"
        for n in range(3000):  # shorter distinct queries fill the memo to its byte bound
            _normalized_query(f"q={n}{'y' * 1500}".encode())
        assert _query_memo.size_bytes <= _query_memo.max_bytes
    finally:
        await harness.client.aclose()


async def test_head_is_served_from_the_get_entry(h: Harness) -> None:
    """HEAD fills or reads the GET entry and never carries a body."""
    head = await h.client.head("/items/6")
    assert head.status_code == 200
    assert head.content == b""
    got = await h.get("/items/6")
    assert got.json()["id"] == 6
    assert got.headers["etag"] == head.headers["etag"]
    head_again = await h.client.head("/items/6")
    assert head_again.content == b""
    assert head_again.headers["content-length"] == got.headers["content-length"]
    assert h.calls["item"] == 1


async def test_entries_expire_and_revalidate_in_the_background(h: Harness) -> None:
    """Past max-age a stale entry is served while one refresh runs; past the stale window
    it is a miss."""
    assert (await h.get("/scores")).json() == {"version": 1}
    h.clock.now += 15
    stale = await h.get("/scores")
    assert stale.json() == {"version": 1}
    assert stale.headers["age"] == "15"
    assert stale.headers["cache-control"] == "public, max-age=10, stale-while-revalidate=30"
    await h.cache.drain()
    assert h.calls["scores"] == 2
    assert (await h.get("/scores")).json() == {"version": 2}
    h.clock.now += 41
    assert (await h.get("/scores")).json() == {"version": 3}
    stats = h.cache.stats()
    assert (stats["stale_hits"], stats["refreshes"], stats["hits"]) == (1, 1, 1)


async def test_hits_are_counted_under_the_route_template(h: Harness) -> None:
    """Hits served before routing still reach the RED metrics under the full route template."""
    for _ in range(3):
        response = await h.get("/api/things/9")
        assert response.headers["cache-control"] == "public, max-age=60, s-maxage=300"
    assert h.calls["thing"] == 1
    labels = {"route": "/api/things/{thing_id}", "method": "GET", "status": "200"}
    assert h.metrics.registry.get_sample_value("tenfold_http_requests_total", labels) == 3


async def test_a_shadowed_path_is_not_cached(h: Harness) -> None:
    """A path an earlier route without a policy matches is never cached."""
    await h.get("/items/special")
    await h.get("/items/special")
    assert h.calls["special"] == 2
    assert h.cache.stats()["misses"] == 0


async def test_mounted_apps_are_cached_and_opaque_mounts_are_not(h: Harness) -> None:
    """A cached route of a mounted FastAPI app hits under its full template; a mounted plain
    ASGI app is never touched."""
    for _ in range(2):
        assert (await h.get("/sub/ping/3")).json() == {"pong": 3}
        assert (await h.get("/raw/anything")).text == "opaque"
    assert (h.calls["ping"], h.calls["opaque"]) == (1, 2)
    labels = {"route": "/sub/ping/{n}", "method": "GET", "status": "200"}
    assert h.metrics.registry.get_sample_value("tenfold_http_requests_total", labels) == 2


async def test_large_bodies_stream_through_uncached(stores: dict[str, Any]) -> None:
    """A body over max_body_bytes is passed through whole, without an ETag, and not stored."""
    harness = Harness(**stores, max_body_bytes=1000)
    try:
        for _ in range(2):
            response = await harness.get("/big")
            assert response.text == "x" * 5000
            assert "etag" not in response.headers
        assert harness.calls["big"] == 2
    finally:
        await harness.client.aclose()


async def test_an_unreachable_store_serves_uncached() -> None:
    """With Redis unreachable every request is answered by the route, with no 5xx."""
    backend = RedisBackend.from_url("redis://127.0.0.1:1")  # nothing listens on port 1
    harness = Harness(store=BackendResponseStore(backend))
    try:
        for _ in range(2):
            assert (await harness.get("/items/8")).json()["id"] == 8
        assert harness.calls["item"] == 2
        assert harness.cache.stats()["errors"] >= 2
    finally:
        await harness.client.aclose()
        await backend.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs max_age"),
        ({"max_age": 1, "per_user": True, "public": True}, "private"),
        ({"max_age": 1, "vary": ("Authorization",)}, "per_user=True"),
        ({"max_age": 1, "immutable": True}, "drop max_age"),
        ({"max_age": -1}, ">= 0"),
        ({"max_age": 1, "public": False, "s_maxage": 5}, "shared caches"),
    ],
)
def test_contradictory_policies_fail_at_decoration(options: dict[str, Any], message: str) -> None:
    """A policy that cannot be honoured fails when the route is declared, saying why."""
    with pytest.raises(ValueError, match=message):
        cache_response(**options)
