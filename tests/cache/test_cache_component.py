"""The cache as a component: settings, metrics, health, warmers, the FastAPI dependency."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from tenfold import CacheSettings, HealthSettings, RedisSettings
from tenfold._components import Component
from tenfold._errors import ConfigurationError
from tenfold.cache import NamespacePolicy
from tenfold.cache._binding import CacheDep
from tenfold.cache._cache import Cache
from tenfold.health import HealthRegistry
from tenfold.observability import Metrics
from tenfold.testing import RedisServer, attach_platform

from .conftest import eventually, with_test_namespaces


def test_app_namespaces_are_declared_and_added_to() -> None:
    """An app's namespaces (a bare number is a TTL) are the ones it declares, and
    with_namespaces adds to them rather than replacing them."""
    settings = CacheSettings.model_validate(
        {"namespaces": {"llm": 7 * 86400, "leaderboard": {"ttl": 2, "stale_ttl": 1}}}
    )
    assert settings.namespaces == {
        "llm": NamespacePolicy(ttl=604800),
        "leaderboard": NamespacePolicy(ttl=2, stale_ttl=1),
    }
    added = settings.with_namespaces(embeddings=None)
    assert added.namespaces["embeddings"].ttl is None
    assert added.namespaces["llm"] == settings.namespaces["llm"]
    assert added.namespaces["leaderboard"] == settings.namespaces["leaderboard"]


def test_bad_settings_fail_with_the_field_name() -> None:
    """Unknown fields, unsafe namespace names and negative TTLs are refused."""
    with pytest.raises(ValidationError, match="namespace"):
        CacheSettings.model_validate({"namespaces": {"bad name": 1}})
    with pytest.raises(ValidationError, match="ttl"):
        CacheSettings.model_validate({"namespaces": {"x": {"ttl": -1}}})
    with pytest.raises(ValidationError, match="extra"):
        CacheSettings.model_validate({"l1_size": 3})


async def test_cache_is_a_component_and_embedded_without_redis() -> None:
    """Cache satisfies the Component protocol and runs L1-only when Redis is not configured."""
    cache = Cache(CacheSettings(), RedisSettings())
    assert isinstance(cache, Component)
    assert cache.name == "cache"
    await cache.start()
    assert cache.backend is None
    await cache.stop()


async def test_metrics_are_exposed_on_the_apps_registry() -> None:
    """Hits and misses per namespace and level, the hit ratio and loader time are scraped."""
    metrics = Metrics(namespace="tenfold")
    cache = Cache(with_test_namespaces(), metrics=metrics)
    await cache.start()
    k = cache.key("profile", 1)

    async def load() -> int:
        return 1

    await cache.get_or_load(k, load)
    await cache.get_or_load(k, load)
    body = metrics.render()[0].decode()
    assert 'tenfold_cache_requests_total{level="l1",namespace="profile",result="hit"} 1.0' in body
    assert 'tenfold_cache_hit_ratio{namespace="profile"} 0.5' in body
    assert 'tenfold_cache_loader_duration_seconds_count{namespace="profile"} 1.0' in body
    for name in ("evictions_total", "redis_errors_total", "stampede_merges_total", "l1_entries"):
        assert f"tenfold_cache_{name}" in body
    await cache.stop()
    assert "tenfold_cache_" not in metrics.render()[0].decode()


async def test_health_check_is_registered_non_critical(redis_server: RedisServer) -> None:
    """With Redis, a non-critical 'cache.redis' check is registered while the cache runs."""
    health = HealthRegistry(HealthSettings(cache_ttl=0))
    cache = Cache(redis=RedisSettings(url=redis_server.url), health=health)
    await cache.start()
    report = await health.report()
    assert report.checks["cache.redis"]["status"] == "ok"
    assert report.checks["cache.redis"]["critical"] is False
    await cache.stop()
    assert "cache.redis" not in (await health.report()).checks


async def test_warmers_run_at_start_and_when_l2_is_emptied(redis_server: RedisServer) -> None:
    """A warmer runs when the cache starts and again once L2 is found empty."""
    settings = with_test_namespaces(CacheSettings(warm_check_interval=0.05))
    cache = Cache(settings, RedisSettings(url=redis_server.url))
    runs: list[int] = []
    k = cache.key("immutable", uuid.uuid4().hex)

    @cache.warmer
    async def hot_keys(c: Cache) -> None:
        runs.append(1)
        await c.set(k, "warm")

    @cache.warmer
    async def broken(c: Cache) -> None:
        raise RuntimeError("a failing warmer is logged, not fatal")

    await cache.start()
    try:
        assert runs == [1]
        assert await cache.get(k) == "warm"
        redis_server.flushall()
        await eventually(lambda: len(runs) == 2, "the re-warm after FLUSHALL")
        cache.l1.clear()
        await eventually(_has(cache, k, "warm"), "the warmed value in L2")
    finally:
        await cache.stop()


def _has(cache: Cache, k: str, value: str):
    async def check() -> bool:
        return await cache.get(k) == value

    return check


async def test_cache_dependency_reads_the_apps_cache() -> None:
    """CacheDep gives a route the cache at app.state.tenfold.cache, and explains its absence."""
    cache = Cache()
    app = FastAPI()

    @app.get("/n")
    async def n(c: CacheDep) -> dict[str, bool]:
        return {"same": c is cache}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.raises(ConfigurationError, match="no cache"):
            await client.get("/n")
        attach_platform(app, cache)
        assert (await client.get("/n")).json() == {"same": True}
