"""create_app: wiring, component order, lifecycle, and the declared middleware stack."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from tenfold import Conflict, DatabaseUnavailable, Platform, PlatformDep, Settings, create_app
from tenfold.cache import cached
from tenfold.httpcache import cache_response
from tenfold.web import Problem


def embedded(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"}, **overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


class Recorder:
    def __init__(self, name: str, log: list[str], *, fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    async def start(self) -> None:
        if self.fail:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def test_health_ready_and_metrics_answer(tmp_path: Path) -> None:
    """An app with no routers of its own serves /health, /ready and /metrics."""
    app = create_app(embedded(tmp_path), configure_logs=False)
    async with serving(app) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {"db.primary": "ok"}}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "tenfold_http_requests_total" in metrics.text


async def test_ready_details_and_metrics_need_their_tokens(tmp_path: Path) -> None:
    """With tokens set, /ready's full report and /metrics need Authorization: Bearer."""
    settings = embedded(
        tmp_path,
        health={"token": "ready-secret-token"},
        observability={"metrics_token": "scrape-secret-token"},
    )
    app = create_app(settings, configure_logs=False)
    async with serving(app) as client:
        public = (await client.get("/ready")).json()
        assert public == {"status": "ok", "checks": {"db.primary": "ok"}}
        wrong = await client.get("/ready", headers={"Authorization": "Bearer nope"})
        assert wrong.json() == public
        full = await client.get("/ready", headers={"Authorization": "Bearer ready-secret-token"})
        assert full.json()["checks"]["db.primary"]["status"] == "ok"
        assert "latency_ms" in full.json()["checks"]["db.primary"]
        refused = await client.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "tenfold_" not in refused.text
        scraped = await client.get(
            "/metrics", headers={"Authorization": "Bearer scrape-secret-token"}
        )
        assert scraped.status_code == 200
        assert "tenfold_http_requests_total" in scraped.text


async def test_components_start_in_order_and_stop_in_reverse(tmp_path: Path) -> None:
    """App components start after the database in the given order and stop in reverse."""
    log: list[str] = []
    seen: list[Platform] = []

    async def hook(platform: Platform) -> None:
        seen.append(platform)
        log.append("hook")

    app = create_app(
        embedded(tmp_path),
        components=[Recorder("a", log), Recorder("b", log)],
        on_startup=[hook],
        configure_logs=False,
    )
    async with serving(app):
        assert log == ["start a", "start b", "hook"]
    assert log[-2:] == ["stop b", "stop a"]
    assert app.state.tenfold.components.names == [
        *("tracing", "db", "cache", "ratelimit", "idempotency", "upstream"),
        *("a", "b"),
    ]
    assert seen == [app.state.tenfold]


async def test_failed_start_stops_what_started(tmp_path: Path) -> None:
    """If a component fails to start, those already started are stopped and the error propagates."""
    log: list[str] = []
    app = create_app(
        embedded(tmp_path),
        components=[Recorder("a", log), Recorder("b", log, fail=True)],
        configure_logs=False,
    )
    with pytest.raises(RuntimeError, match="b cannot start"):
        async with serving(app):
            pass
    assert log == ["start a", "stop a"]


async def test_unreachable_database_fails_startup_clearly() -> None:
    """An unreachable primary stops startup with DatabaseUnavailable naming the setting."""
    settings = Settings(
        db={
            "url": "postgresql://app:hunter2pw@127.0.0.1:1/app",
            "cursor_secret": "app-test-cursor-secret",
            "connect_retries": 1,
            "connect_backoff": 0.01,
            "connect_timeout": 0.5,
        },
    )
    app = create_app(settings, configure_logs=False)
    with pytest.raises(DatabaseUnavailable) as info:
        async with serving(app):
            pass
    assert "TENFOLD_DB__URL" in str(info.value)
    assert "hunter2pw" not in str(info.value)


async def test_unhandled_error_is_a_problem_with_request_id(tmp_path: Path) -> None:
    """An exception in a handler becomes a 500 problem+json carrying the request id, no trace."""
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("secret internals")

    app = create_app(embedded(tmp_path), routers=[router], configure_logs=False)
    async with serving(app) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["x-request-id"] == "req-123"
    body = response.json()
    assert body["request_id"] == "req-123"
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text


def test_middleware_order_is_declared_once(tmp_path: Path) -> None:
    """Every declared middleware is in the stack, outermost first, in the documented order."""
    app = create_app(embedded(tmp_path), configure_logs=False)
    names = [m.cls.__name__ for m in app.user_middleware]  # type: ignore[attr-defined]
    assert names == [
        "ObservabilityMiddleware",
        "HttpMiddleware",
        "ProblemMiddleware",
        "InFlightMiddleware",
        "ConsistencyMiddleware",
        "RateLimitMiddleware",
        "HttpCacheMiddleware",
        "CacheMiddleware",
    ]


def test_create_app_reads_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without settings, create_app reads TENFOLD_* and fails on a bad one at build time."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TENFOLD_DB__POOL_TIMEOUT", "-3")
    from tenfold import ConfigurationError

    with pytest.raises(ConfigurationError, match="TENFOLD_DB__POOL_TIMEOUT"):
        create_app(configure_logs=False)


async def test_platform_is_a_dependency(tmp_path: Path) -> None:
    """Handlers reach the Platform (and through it every component) via PlatformDep."""
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(platform: PlatformDep) -> dict[str, str]:
        return {"profile": platform.settings.profile, "db": platform.db.name}

    app = create_app(embedded(tmp_path), routers=[router], configure_logs=False)
    async with serving(app) as client:
        assert (await client.get("/whoami")).json() == {"profile": "embedded", "db": "db"}


async def test_cache_is_wired_for_responses_and_functions(tmp_path: Path) -> None:
    """create_app gives routes HTTP response caching and @cached functions the app's cache."""
    calls = {"view": 0, "score": 0}
    router = APIRouter()

    @cached(namespace="leaderboard", key=["player"])
    async def score(player: str) -> int:
        calls["score"] += 1
        return len(player)

    @router.get("/boards/{player}")
    @cache_response(max_age=60)
    async def board(player: str) -> dict[str, int]:
        calls["view"] += 1
        return {"score": await score(player)}

    @router.get("/scores/{player}")
    async def raw_score(player: str) -> dict[str, int]:
        return {"score": await score(player)}

    app = create_app(embedded(tmp_path), routers=[router], configure_logs=False)
    async with serving(app) as client:
        first = await client.get("/boards/ann")
        second = await client.get("/boards/ann")
        assert first.json() == second.json() == {"score": 3}
        assert calls["view"] == 1
        not_modified = await client.get(
            "/boards/ann", headers={"If-None-Match": first.headers["etag"]}
        )
        assert not_modified.status_code == 304
        assert "x-request-id" in not_modified.headers
        assert (await client.get("/scores/ann")).json() == {"score": 3}
        assert calls["score"] == 1
        ready = (await client.get("/ready")).json()
        assert ready["status"] == "ok"


@pytest.mark.parametrize("enabled", [True, False])
async def test_startup_heap_is_frozen_while_serving(tmp_path: Path, enabled: bool) -> None:
    """With app.gc_freeze the objects alive at startup leave the collector's generations
    while the app serves, and return to them when it stops."""
    app = create_app(embedded(tmp_path, app={"gc_freeze": enabled}), configure_logs=False)
    assert gc.get_freeze_count() == 0
    async with serving(app) as client:
        assert (await client.get("/health")).status_code == 200
        frozen = gc.get_freeze_count()
    assert (frozen > 10_000) is enabled
    assert gc.get_freeze_count() == 0


class OutOfStock(Conflict):
    """An application's own error."""


async def test_app_maps_its_own_errors(tmp_path: Path) -> None:
    """create_app(problems=...) answers the app's exceptions, and may override tenfold's."""
    router = APIRouter()

    @router.get("/stock")
    async def stock() -> None:
        raise OutOfStock("none left")

    @router.get("/busy")
    async def busy() -> None:
        raise DatabaseUnavailable()

    problems = {
        OutOfStock: Problem(409, "Out of Stock", type="https://shop.example/out-of-stock"),
        DatabaseUnavailable: Problem(503, "Try Again Soon", expose_detail=True),
    }
    app = create_app(embedded(tmp_path), routers=[router], problems=problems, configure_logs=False)
    async with serving(app) as client:
        stock = (await client.get("/stock")).json()
        assert (stock["status"], stock["type"]) == (409, "https://shop.example/out-of-stock")
        busy = await client.get("/busy")
        assert (busy.status_code, busy.json()["title"]) == (503, "Try Again Soon")
        assert "retry-after" not in busy.headers
