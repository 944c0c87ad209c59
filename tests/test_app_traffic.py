"""create_app wiring of rate limits, idempotency defaults and upstream clients from Settings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel

from tenfold import ConfigurationError, Platform, PlatformDep, Settings, create_app
from tenfold.idempotency import (
    IdempotentRoute,
    IdempotentSession,
    MemoryStore,
    RedisStore,
    create_table,
    idempotency_key,
)
from tenfold.ratelimit import (
    LeasedBackend,
    MemoryBackend,
    Policy,
    RateLimits,
    RedisBackend,
    rate_limit,
)
from tenfold.resilience import (
    CircuitOpen,
    ExternalClient,
    RedisUpstreamQuota,
    RetriesExhausted,
    UpstreamError,
    UpstreamQuota,
)
from tenfold.testing import RedisServer


def embedded(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"}, **overrides)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


def items_router() -> APIRouter:
    router = APIRouter()

    @router.get("/items")
    async def items() -> list[int]:
        return [1, 2]

    @router.get("/media/{name}")
    async def media(name: str) -> dict[str, str]:
        return {"name": name}

    return router


def platform_of(app: FastAPI) -> Platform:
    return app.state.tenfold  # type: ignore[no-any-return]


# -- rate limits ----------------------------------------------------------------


async def test_settings_default_policy_refuses_with_problem_and_request_id(
    tmp_path: Path,
) -> None:
    """TENFOLD_RATELIMIT__DEFAULT=3/minute: the 4th request is a 429 problem with the request id."""
    settings = embedded(tmp_path, ratelimit={"default": "3/minute"})
    app = create_app(settings, routers=[items_router()], configure_logs=False)
    async with serving(app) as client:
        admitted = [await client.get("/items") for _ in range(3)]
        refused = await client.get("/items", headers={"X-Request-ID": "req-429"})
        probes = [(await client.get(path)).status_code for path in ("/health", "/ready") * 3]
        metrics = (await client.get("/metrics")).text
    assert [r.status_code for r in admitted] == [200, 200, 200]
    assert admitted[-1].headers["RateLimit-Remaining"] == "0"
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-Request-ID"] == "req-429"
    assert refused.json()["status"] == 429
    assert probes == [200] * 6  # probes and scrapes are never limited
    assert 'tenfold_ratelimit_decisions_total{outcome="limited",policy="default"} ' in metrics


async def test_settings_prefix_policy_applies_under_its_prefix_only(tmp_path: Path) -> None:
    """TENFOLD_RATELIMIT__PREFIXES limits paths under the prefix and leaves the others alone."""
    settings = embedded(tmp_path, ratelimit={"prefixes": '{"/media": "2/minute"}'})
    app = create_app(settings, routers=[items_router()], configure_logs=False)
    async with serving(app) as client:
        media = [(await client.get(f"/media/{i}")).status_code for i in range(3)]
        items = [(await client.get("/items")).status_code for _ in range(5)]
    assert media == [200, 200, 429]
    assert items == [200] * 5


async def test_no_policy_sends_no_ratelimit_headers(tmp_path: Path) -> None:
    """Without any policy the limiter is installed but decides nothing."""
    app = create_app(embedded(tmp_path), routers=[items_router()], configure_logs=False)
    async with serving(app) as client:
        response = await client.get("/items")
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response.headers
    assert isinstance(platform_of(app).ratelimit, MemoryBackend)


async def test_code_policies_and_markers_work_beside_settings(tmp_path: Path) -> None:
    """create_app(rate_limits=...) routes and @rate_limit markers apply with settings' policies."""
    settings = embedded(tmp_path, ratelimit={"default": ["100/minute", "1000/day"]})
    limits = RateLimits(routes={"/items/{item_id}": Policy("item", ["2/minute"])})
    app = create_app(settings, rate_limits=limits, configure_logs=False)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/login")
    @rate_limit(Policy("login", ["1/minute"], auth=True))
    async def login() -> dict[str, bool]:
        return {"ok": True}

    async with serving(app) as client:
        items = [(await client.get(f"/items/{i}")).status_code for i in range(3)]
        logins = [(await client.post("/login")).status_code for _ in range(2)]
    assert items == [200, 200, 429]
    assert logins == [200, 429]


async def test_markers_and_routes_on_included_routers_apply(tmp_path: Path) -> None:
    """Markers and rate_limits routes reach endpoints of the routers passed to create_app."""
    router = APIRouter(prefix="/api")

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @router.post("/login")
    @rate_limit(Policy("login", ["1/minute"], auth=True))
    async def login() -> dict[str, bool]:
        return {"ok": True}

    limits = RateLimits(routes={"/api/items/{item_id}": Policy("item", ["2/minute"])})
    app = create_app(embedded(tmp_path), routers=[router], rate_limits=limits, configure_logs=False)
    async with serving(app) as client:
        items = [(await client.get(f"/api/items/{i}")).status_code for i in range(3)]
        logins = [(await client.post("/api/login")).status_code for _ in range(2)]
    assert items == [200, 200, 429]
    assert logins == [200, 429]


def test_default_in_settings_and_code_is_a_configuration_error(tmp_path: Path) -> None:
    """An app-wide policy both in settings and in code fails at build time, naming the setting."""
    settings = embedded(tmp_path, ratelimit={"default": "10/minute"})
    with pytest.raises(ConfigurationError, match="TENFOLD_RATELIMIT__DEFAULT"):
        create_app(
            settings,
            rate_limits=RateLimits(default=Policy("api", ["5/minute"])),
            configure_logs=False,
        )


def test_redis_backend_without_redis_is_a_configuration_error(tmp_path: Path) -> None:
    """TENFOLD_RATELIMIT__BACKEND=redis without TENFOLD_REDIS__* fails when the app is built."""
    with pytest.raises(ConfigurationError) as info:
        create_app(embedded(tmp_path, ratelimit={"backend": "redis"}), configure_logs=False)
    assert info.value.setting == "TENFOLD_RATELIMIT__BACKEND"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TENFOLD_RATELIMIT__DEFAULT", "100/fortnight"),
        ("TENFOLD_RATELIMIT__DEFAULT", '["100/minute", "100/minute"]'),
        ("TENFOLD_RATELIMIT__PREFIXES", '{"/media": "ten/minute"}'),
        ("TENFOLD_RATELIMIT__PREFIXES", '{"/media": '),
        ("TENFOLD_HTTP__TRUSTED_PROXIES", "10.0.0.0/8,10.0.0.300/32"),
        ("TENFOLD_RATELIMIT__PREFIX", "tf:{rl}:"),
        ("TENFOLD_UPSTREAM__PROVIDERS", '{"strava": {"retry_attempts": 0}}'),
    ],
)
def test_bad_traffic_setting_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A bad rule, CIDR, prefix or provider override fails Settings.load() naming the variable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        Settings.load()
    assert info.value.setting == variable
    assert variable in str(info.value)


def test_rules_and_proxies_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule lists and CIDRs are accepted bare, comma-separated or as JSON."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TENFOLD_RATELIMIT__DEFAULT", "100/minute, 1000/day")
    monkeypatch.setenv("TENFOLD_RATELIMIT__PREFIXES", '{"/media": ["10/minute"]}')
    monkeypatch.setenv("TENFOLD_HTTP__TRUSTED_PROXIES", '["10.0.0.0/8", "::1"]')
    settings = Settings.load()
    s = settings.ratelimit
    assert s.default == ["100/minute", "1000/day"]
    assert s.prefixes == {"/media": ["10/minute"]}
    assert settings.http.trusted_proxies == ["10.0.0.0/8", "::1"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("TENFOLD_RATELIMIT__TRUSTED_PROXIES", "TENFOLD_HTTP__TRUSTED_PROXIES"),
        ("TENFOLD_RATELIMIT__FORWARDED_HEADER", "TENFOLD_HTTP__FORWARDED_HEADER"),
    ],
)
def test_moved_proxy_settings_stop_startup_naming_the_new_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str
) -> None:
    """The rate limiter's old proxy settings are refused with the variable that replaces them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(old, "10.0.0.0/8" if old.endswith("PROXIES") else "forwarded")
    with pytest.raises(ConfigurationError) as info:
        Settings.load()
    assert info.value.setting == old
    assert new in str(info.value)


async def test_trusted_proxies_and_key_from_settings(tmp_path: Path) -> None:
    """key=ip behind TENFOLD_HTTP__TRUSTED_PROXIES counts each forwarded client apart."""
    settings = embedded(
        tmp_path, ratelimit={"default": "1/minute"}, http={"trusted_proxies": "127.0.0.0/8"}
    )
    app = create_app(settings, routers=[items_router()], configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            a = await client.get("/items", headers={"X-Forwarded-For": "203.0.113.1"})
            b = await client.get("/items", headers={"X-Forwarded-For": "203.0.113.2"})
            a_again = await client.get("/items", headers={"X-Forwarded-For": "203.0.113.1"})
    assert (a.status_code, b.status_code, a_again.status_code) == (200, 200, 429)


async def test_code_defined_by_ip_policy_uses_the_trusted_proxies(tmp_path: Path) -> None:
    """A code-defined Policy keyed by_ip() counts the client the trusted proxy reported."""
    settings = embedded(tmp_path, http={"trusted_proxies": "127.0.0.0/8"})
    limits = RateLimits(default=Policy("code", ["1/minute"]))
    app = create_app(settings, routers=[items_router()], rate_limits=limits, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            a = await client.get("/items", headers={"X-Forwarded-For": "203.0.113.1"})
            b = await client.get("/items", headers={"X-Forwarded-For": "203.0.113.2"})
            a_again = await client.get("/items", headers={"X-Forwarded-For": "203.0.113.1"})
    assert (a.status_code, b.status_code, a_again.status_code) == (200, 200, 429)


async def test_lease_mode_wraps_the_backend(tmp_path: Path) -> None:
    """TENFOLD_RATELIMIT__MODE=lease: platform.ratelimit is a LeasedBackend over the shared one."""
    settings = embedded(
        tmp_path,
        ratelimit={"mode": "lease", "lease_size": 5, "lease_max_age": 30, "default": "20/minute"},
    )
    app = create_app(settings, routers=[items_router()], configure_logs=False)
    backend = platform_of(app).ratelimit
    assert isinstance(backend, LeasedBackend)
    assert isinstance(backend.shared, MemoryBackend)
    assert (backend.lease_size, backend.max_age) == (5, 30.0)
    async with serving(app) as client:
        statuses = [(await client.get("/items")).status_code for _ in range(10)]
    assert statuses == [200] * 10
    assert backend.refills == 2  # two leases of 5, not ten decisions on the shared limiter


async def test_platform_ratelimit_backend_is_usable_by_hand(tmp_path: Path) -> None:
    """Handlers hit platform.ratelimit directly, e.g. for per-message or manual limits."""
    router = APIRouter()

    @router.post("/votes")
    async def vote(platform: PlatformDep) -> dict[str, bool]:
        decision = await platform.ratelimit.hit("voter:1", _VOTE)
        return {"allowed": decision.allowed}

    app = create_app(embedded(tmp_path), routers=[router], configure_logs=False)
    async with serving(app) as client:
        answers = [(await client.post("/votes")).json()["allowed"] for _ in range(3)]
    assert answers == [True, True, False]


_VOTE = Policy("vote", ["2/hour"]).rules[0]


# -- idempotency ----------------------------------------------------------------


class Note(BaseModel):
    text: str


async def test_idempotent_session_takes_header_and_ttl_from_settings(tmp_path: Path) -> None:
    """IdempotentSession without a config uses TENFOLD_IDEMPOTENCY__HEADER and __TTL."""
    router = APIRouter(route_class=IdempotentRoute)
    runs: list[str] = []

    @router.post("/notes", status_code=201)
    async def add_note(body: Note, session: IdempotentSession) -> dict[str, str]:
        runs.append(body.text)
        return {"text": body.text}

    async def tables(platform: Platform) -> None:
        await create_table(platform.db)

    settings = embedded(tmp_path, idempotency={"header": "X-Once", "ttl": 120})
    app = create_app(settings, routers=[router], on_startup=[tables], configure_logs=False)
    assert platform_of(app).idempotency.config.ttl == 120
    headers = {"X-Once": "k1", "X-API-Key": "client-1"}
    async with serving(app) as client:
        missing = await client.post("/notes", json={"text": "a"}, headers={"X-API-Key": "c"})
        first = await client.post("/notes", json={"text": "a"}, headers=headers)
        again = await client.post("/notes", json={"text": "a"}, headers=headers)
    assert missing.status_code == 400
    assert "X-Once" in missing.json()["detail"]
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert runs == ["a"]


async def test_idempotency_key_without_store_uses_the_apps(tmp_path: Path) -> None:
    """idempotency_key() with no store keys the route in platform.idempotency.store."""
    router = APIRouter(route_class=IdempotentRoute)
    runs: list[int] = []

    @router.post(
        "/send", status_code=202, dependencies=[Depends(idempotency_key(), scope="function")]
    )
    async def send() -> dict[str, int]:
        runs.append(1)
        return {"sent": len(runs)}

    app = create_app(embedded(tmp_path), routers=[router], configure_logs=False)
    headers = {"Idempotency-Key": "m1", "X-API-Key": "client-1"}
    async with serving(app) as client:
        first = await client.post("/send", headers=headers)
        again = await client.post("/send", headers=headers)
    assert first.json() == again.json() == {"sent": 1}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert isinstance(platform_of(app).idempotency.store, MemoryStore)


def test_idempotency_redis_store_without_redis_is_a_configuration_error(tmp_path: Path) -> None:
    """TENFOLD_IDEMPOTENCY__STORE=redis without TENFOLD_REDIS__* fails at build time."""
    with pytest.raises(ConfigurationError) as info:
        create_app(embedded(tmp_path, idempotency={"store": "redis"}), configure_logs=False)
    assert info.value.setting == "TENFOLD_IDEMPOTENCY__STORE"


# -- upstream clients -----------------------------------------------------------


def echo_transport(calls: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"path": request.url.path})

    return httpx.MockTransport(answer)


async def test_upstream_client_uses_settings_and_is_closed_at_shutdown(tmp_path: Path) -> None:
    """platform.upstream() builds its policy from TENFOLD_UPSTREAM__* and closes at shutdown."""
    settings = embedded(
        tmp_path,
        upstream={
            "timeout": 4,
            "connect_timeout": 1.5,
            "retry_attempts": 2,
            "retry_deadline": 9,
            "failure_rate": 0.25,
            "minimum_calls": 4,
            "open_for": 12,
            "max_concurrent": 3,
            "providers": {"strava": {"retry_attempts": 5}},
        },
    )
    calls: list[httpx.Request] = []
    made: dict[str, ExternalClient] = {}

    async def clients(platform: Platform) -> None:
        made["fit"] = platform.upstream(
            "fit", base_url="https://fit", transport=echo_transport(calls)
        )
        made["strava"] = platform.upstream(
            "strava", transport=echo_transport(calls), max_concurrent=7
        )

    router = APIRouter()

    @router.get("/proxy")
    async def proxy(platform: PlatformDep) -> Any:
        return (await platform.upstreams["fit"].get("/steps")).json()

    app = create_app(settings, routers=[router], on_startup=[clients], configure_logs=False)
    async with serving(app) as client:
        assert (await client.get("/proxy", headers={"X-Request-ID": "r-1"})).json() == {
            "path": "/steps"
        }
        metrics = (await client.get("/metrics")).text
        fit, strava = made["fit"], made["strava"]
        assert sorted(platform_of(app).upstreams) == ["fit", "strava"]
        assert not fit._http.is_closed
    assert calls[0].headers["X-Request-ID"] == "r-1"
    assert 'tenfold_upstream_requests_total{outcome="ok",provider="fit"} 1.0' in metrics
    policy = fit.policy
    assert policy.retry is not None
    assert policy.breaker is not None
    assert policy.bulkhead is not None
    assert (policy.retry.attempts, policy.retry.deadline) == (2, 9.0)
    assert (policy.breaker.failure_rate, policy.breaker.minimum_calls) == (0.25, 4)
    assert policy.breaker.open_for == 12.0
    assert policy.bulkhead.max_concurrent == 3
    assert fit._http.timeout == httpx.Timeout(4.0, connect=1.5)
    assert strava.policy.retry is not None
    assert strava.policy.retry.attempts == 5
    assert strava.policy.bulkhead is not None
    assert strava.policy.bulkhead.max_concurrent == 7
    assert fit._http.is_closed
    assert strava._http.is_closed
    assert len(platform_of(app).upstreams) == 0


def test_upstream_overrides_are_validated(tmp_path: Path) -> None:
    """A bad or unknown override is an error; a provider gets one client."""
    app = create_app(embedded(tmp_path), configure_logs=False)
    platform = platform_of(app)
    with pytest.raises(ValueError, match="retry_attempts"):
        platform.upstream("a", retry_attempts=0)
    with pytest.raises(ValueError, match="retry_atempts"):
        platform.upstream("a", retry_atempts=2)  # type: ignore[call-arg]
    platform.upstream("a")
    with pytest.raises(ValueError, match="exists"):
        platform.upstream("a")


async def test_upstream_retries_transient_failures_only(tmp_path: Path) -> None:
    """A 503 is retried up to TENFOLD_UPSTREAM__RETRY_ATTEMPTS; a 500 and a 404 are not."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/flaky" and seen.count("/flaky") == 1:
            return httpx.Response(503, headers={"Retry-After": "0"})
        if request.url.path == "/broken":
            return httpx.Response(500, headers={"Retry-After": "0"})
        return httpx.Response(404 if request.url.path == "/missing" else 200)

    settings = embedded(tmp_path, upstream={"retry_attempts": 2})
    app = create_app(settings, configure_logs=False)
    async with serving(app):
        client = platform_of(app).upstream(
            "svc", base_url="http://svc", transport=httpx.MockTransport(answer)
        )
        assert (await client.get("/flaky")).status_code == 200
        assert (await client.get("/missing")).status_code == 404
        with pytest.raises(UpstreamError) as broken:
            await client.get("/broken")
        assert broken.value.status_code == 500
        calls = platform_of(app).upstreams.events.calls
        assert (
            calls[("svc", "failure")] == 2
        )  # the first /flaky and /broken: the breaker counts both
    assert seen == ["/flaky", "/flaky", "/missing", "/broken"]


# -- Redis ----------------------------------------------------------------------


def redis_settings(tmp_path: Path, server: RedisServer, ns: str, **overrides: Any) -> Settings:
    ratelimit = {"prefix": f"{ns}:rl:", **overrides.pop("ratelimit", {})}
    idempotency = {"prefix": f"{ns}:idem:", **overrides.pop("idempotency", {})}
    return embedded(
        tmp_path,
        redis={"url": server.url},
        ratelimit=ratelimit,
        idempotency=idempotency,
        **overrides,
    )


@pytest.fixture
def ns() -> str:
    return "t" + uuid.uuid4().hex[:12]


async def test_redis_settings_choose_the_redis_backend(
    tmp_path: Path, redis_server: RedisServer, ns: str
) -> None:
    """With TENFOLD_REDIS__URL set, auto picks Redis and limits are kept there under the prefix."""
    settings = redis_settings(tmp_path, redis_server, ns, ratelimit={"default": "2/minute"})
    app = create_app(settings, routers=[items_router()], configure_logs=False)
    backend = platform_of(app).ratelimit
    assert isinstance(backend, RedisBackend)
    async with serving(app) as client:
        statuses = [(await client.get("/items")).status_code for _ in range(3)]
        refused = await client.get("/items", headers={"X-Request-ID": "redis-429"})
    assert statuses == [200, 200, 429]
    assert refused.headers["X-Request-ID"] == "redis-429"
    assert "Retry-After" in refused.headers
    check = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await check.keys(f"{ns}:rl:*")
    finally:
        await check.aclose()


async def test_redis_lease_mode_and_redis_idempotency_store(
    tmp_path: Path, redis_server: RedisServer, ns: str
) -> None:
    """Lease mode wraps the Redis backend; idempotency_key() keys the route in Redis."""
    settings = redis_settings(
        tmp_path, redis_server, ns, ratelimit={"mode": "lease", "default": "50/minute"}
    )
    router = APIRouter(route_class=IdempotentRoute)
    runs: list[int] = []

    @router.post("/send", dependencies=[Depends(idempotency_key(), scope="function")])
    async def send() -> dict[str, int]:
        runs.append(1)
        return {"sent": len(runs)}

    app = create_app(settings, routers=[router], configure_logs=False)
    platform = platform_of(app)
    backend = platform.ratelimit
    assert isinstance(backend, LeasedBackend)
    assert isinstance(backend.shared, RedisBackend)
    headers = {"Idempotency-Key": "m1", "X-API-Key": "client-1"}
    async with serving(app) as client:
        first = await client.post("/send", headers=headers)
        again = await client.post("/send", headers=headers)
        assert isinstance(platform.idempotency.store, RedisStore)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert runs == [1]
    assert backend.refills == 1


async def test_instances_share_breaker_opens_and_quotas_through_redis(
    tmp_path: Path, redis_server: RedisServer, ns: str
) -> None:
    """With Redis configured, a provider's breaker opening on one instance opens it on the
    others (their calls are refused unsent), and quota=True tracks one shared quota."""
    provider = f"flaky-{ns}"
    sent: dict[str, int] = {"a": 0, "b": 0}

    def failing(instance: str) -> httpx.MockTransport:
        def answer(request: httpx.Request) -> httpx.Response:
            sent[instance] += 1
            return httpx.Response(503)

        return httpx.MockTransport(answer)

    upstream = {"minimum_calls": 2, "failure_rate": 0.5, "retry_attempts": 1, "open_for": 60}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    apps = {
        name: create_app(
            redis_settings(tmp_path / name, redis_server, ns, upstream=upstream),
            configure_logs=False,
        )
        for name in ("a", "b")
    }
    async with serving(apps["a"]), serving(apps["b"]):
        a, b = platform_of(apps["a"]), platform_of(apps["b"])
        assert a.upstreams.breaker_state is not None
        clients = {
            name: p.upstream(provider, base_url="https://x", transport=failing(name), quota=True)
            for name, p in (("a", a), ("b", b))
        }
        assert isinstance(clients["a"].quota, RedisUpstreamQuota)
        for _ in range(2):
            with pytest.raises(RetriesExhausted):  # one attempt: the 503, not retried
                await clients["a"].get("/")
        assert clients["a"].policy.breaker.state == "open"  # type: ignore[union-attr]
        breaker_b = clients["b"].policy.breaker
        for _ in range(100):  # pub/sub delivery: bounded wait, no fixed sleep
            if breaker_b.state == "open":  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.05)
        assert breaker_b.state == "open"  # type: ignore[union-attr]
        with pytest.raises(CircuitOpen):
            await clients["b"].get("/")
    assert sent == {"a": 2, "b": 0}


async def test_without_redis_upstream_state_is_per_process(tmp_path: Path) -> None:
    """Embedded: no shared breaker state, and quota=True tracks a per-process quota."""
    app = create_app(embedded(tmp_path), configure_logs=False)
    platform = platform_of(app)
    assert platform.upstreams.breaker_state is None
    client = platform.upstream("p", quota=True, transport=echo_transport([]))
    assert isinstance(client.quota, UpstreamQuota)


def test_quota_limits_from_settings_track_the_quota(tmp_path: Path) -> None:
    """A provider's TENFOLD_UPSTREAM__PROVIDERS quota_limits give its client a quota that
    holds from the first call; an unknown window fails at load, naming the variable."""
    settings = embedded(
        tmp_path, upstream={"providers": {"strava": {"quota_limits": {"15m": 100, "daily": 1000}}}}
    )
    platform = platform_of(create_app(settings, configure_logs=False))
    strava = platform.upstream("strava", transport=echo_transport([]))
    assert isinstance(strava.quota, UpstreamQuota)
    assert strava.quota.remaining() == {"15m": 100, "daily": 1000}
    assert platform.upstream("other", transport=echo_transport([])).quota is None
    with pytest.raises(ConfigurationError, match="TENFOLD_UPSTREAM__QUOTA_LIMITS"):
        Settings.load(upstream={"quota_limits": '{"hourly": 5}'})


async def test_redis_limiter_reports_readiness_degraded_when_its_redis_is_down(
    tmp_path: Path, redis_server: RedisServer, ns: str
) -> None:
    """A Redis-backed limiter adds the non-critical check ratelimit.redis: ok while Redis
    answers, failing (readiness degraded, still 200) when it does not."""
    app = create_app(
        redis_settings(
            tmp_path,
            redis_server,
            ns,
            ratelimit={"default": "100/minute"},
            health={"cache_ttl": 0.0},  # every report evaluated afresh
        ),
        configure_logs=False,
    )
    async with serving(app):
        health = platform_of(app).health
        report = await health.report()
        assert report.checks["ratelimit.redis"]["status"] == "ok"
        assert report.checks["ratelimit.redis"]["critical"] is False
        redis_server.stop()
        try:
            report = await health.report()
        finally:
            redis_server.start()
        assert report.checks["ratelimit.redis"]["status"] == "failing"
        assert report.status == "degraded"
    assert "ratelimit.redis" not in (await health.report()).checks
