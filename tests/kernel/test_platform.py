"""Platform.open: any process (a worker, a script, a test) opens the same components."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI

from tenfold import (
    ConfigurationError,
    DatabaseSettings,
    Platform,
    PlatformDep,
    RedisSettings,
    Settings,
    Use,
    create_app,
)
from tenfold.cache import Cache, CacheDep
from tenfold.db import Database
from tenfold.idempotency import IdempotencyComponent
from tenfold.ratelimit import LimiterBackend, Rate, Rule
from tenfold.resilience import UpstreamRegistry

pytestmark = pytest.mark.usefixtures("clean_env")
CURSOR_SECRET = "kernel-test-cursor-secret"


async def _exercise(platform: Platform) -> None:
    """Use the database, the cache and the limiter as a worker would: no app, no request."""
    database = platform.get(Database)
    async with database.session() as session:
        await session.execute(sa.text("CREATE TABLE IF NOT EXISTS jobs (id int PRIMARY KEY)"))
        await session.execute(sa.text("DELETE FROM jobs"))
        await session.execute(sa.text("INSERT INTO jobs VALUES (1), (2)"))
    async with database.session(readonly=True) as session:
        assert await session.scalar(sa.text("SELECT count(*) FROM jobs")) == 2

    cache = platform.get(Cache)
    loads: list[str] = []

    async def load() -> dict[str, int]:
        loads.append("x")
        return {"n": 2}

    key = cache.key("jobs", "count")
    assert await cache.get_or_load(key, load) == {"n": 2}
    assert await cache.get_or_load(key, load) == {"n": 2}
    assert loads == ["x"]

    limiter = platform.get(LimiterBackend)
    rule = Rule(Rate.parse("2/minute"))
    decisions = [await limiter.hit("worker:1", rule) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]


async def test_embedded_platform_without_an_app() -> None:
    """With no settings, a platform opens SQLite, an in-process cache and limiter; no FastAPI."""
    async with Platform.open(configure_logs=False) as platform:
        assert platform.settings.profile == "embedded"
        await _exercise(platform)
        assert platform.get(Cache).backend is None  # L1 only
    assert not platform.started


async def test_distributed_platform_without_an_app(pg_cluster: Any, redis_server: Any) -> None:
    """On PostgreSQL and Redis the same code paths run: the limiter and cache use Redis."""
    redis_server.flushall()
    settings = Settings.load(
        db=DatabaseSettings(url=pg_cluster.primary.url("postgres"), cursor_secret=CURSOR_SECRET),
        redis=RedisSettings(url=redis_server.url),
    )
    async with Platform.open(settings, configure_logs=False) as platform:
        assert platform.settings.profile == "distributed"
        await _exercise(platform)
        assert platform.get(Cache).backend is not None
    keys = redis_server.command("KEYS", "*")
    assert any(b"worker:1" in k for k in keys)  # the limiter's decisions were in Redis


def test_get_names_what_is_missing() -> None:
    """platform.get of something no extension provides names what is provided."""
    platform = Platform.build(builtins=False, configure_logs=False)
    with pytest.raises(ConfigurationError, match="provides no Database"):
        platform.get(Database)
    assert platform.find(Database) is None


def test_builtin_objects_are_found_by_type_and_by_name() -> None:
    """The built-ins are reachable with get(Type) and as the attributes apps already use."""
    platform = Platform.build(configure_logs=False)
    assert platform.db is platform.get(Database)  # type: ignore[attr-defined]
    assert platform.cache is platform.get(Cache)  # type: ignore[attr-defined]
    assert platform.ratelimit is platform.get(LimiterBackend)  # type: ignore[attr-defined]
    assert platform.idempotency is platform.get(IdempotencyComponent)  # type: ignore[attr-defined]
    assert platform.upstreams is platform.get(UpstreamRegistry)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="named objects"):
        platform.nothing  # type: ignore[attr-defined]  # noqa: B018


def test_provide_twice_is_refused() -> None:
    """Two providers of one type would make get() ambiguous: the second is refused."""
    platform = Platform.build(configure_logs=False)
    with pytest.raises(ConfigurationError, match="provided twice"):
        platform.provide(platform.get(Database))


async def test_fastapi_dependencies_reach_the_platform() -> None:
    """Use[Cache] and PlatformDep give a route the app's objects, without app.state strings."""
    router = APIRouter()

    @router.get("/where")
    async def where(cache: Use[Cache], platform: PlatformDep) -> dict[str, bool]:
        return {"same": cache is platform.get(Cache)}

    app: FastAPI = create_app(routers=[router], configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/where")).json() == {"same": True}


async def test_the_platform_dependencies_take_no_thread_hop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Use[...], PlatformDep and CacheDep are resolved on the event loop: FastAPI runs a
    plain ``def`` dependency on its thread pool, a thread hop per request."""
    import fastapi.dependencies.utils as fastapi_utils

    hops = []
    real = fastapi_utils.run_in_threadpool

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(fastapi_utils, "run_in_threadpool", counting)
    router = APIRouter()

    @router.get("/where")
    async def where(cache: Use[Cache], other: CacheDep, platform: PlatformDep) -> bool:
        return cache is other is platform.get(Cache)

    app: FastAPI = create_app(routers=[router], configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/where")).json() is True
    assert hops == []


async def test_a_failing_start_stops_what_started(pg_cluster: Any) -> None:
    """If a component cannot start, those already started are stopped; the error says why."""
    from tenfold.testing import allocate_port, release_port

    port = allocate_port()
    try:
        settings = Settings.load(
            db=DatabaseSettings(
                url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
                cursor_secret=CURSOR_SECRET,
                connect_retries=0,
                connect_timeout=0.5,
            )
        )
        platform = Platform.build(settings, configure_logs=False)
        with pytest.raises(Exception, match="database"):
            await platform.start()
        assert not platform.started
    finally:
        release_port(port)


async def test_a_failing_started_hook_stops_everything() -> None:
    """An on_started hook that raises leaves no component running: all are stopped."""
    from tenfold import Build, Extension

    class Broken(Extension):
        name = "broken"

        def build(self, build: Build) -> None:
            async def explode(platform: Platform) -> None:
                raise RuntimeError("hook failed")

            build.on_started(explode)

    platform = Platform.build(extensions=[Broken()], configure_logs=False)
    with pytest.raises(RuntimeError, match="hook failed"):
        await platform.start()
    assert not platform.started
    assert platform.get(Database).router.primary.engine.pool.checkedout() == 0
    # Stopped, not merely abandoned: the group holds nothing started.
    assert platform.components._started == []
