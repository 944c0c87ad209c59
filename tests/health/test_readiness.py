"""Readiness: cached, single-flight, time-limited checks and the status they add up to."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tenfold.health import HealthRegistry, Lifecycle, health_router


class Counting:
    """A check that counts its calls and does what the test configures."""

    def __init__(self, result: dict[str, Any] | None = None, error: Exception | None = None):
        self.calls = 0
        self.result = result
        self.error = error
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> dict[str, Any] | None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.result


async def test_report_is_cached_for_the_ttl(registry: HealthRegistry, clock) -> None:
    """Within cache_ttl a report is reused; after it the checks run again."""
    check = Counting()
    registry.register("db", check)
    first = await registry.report()
    clock.advance(0.9)
    assert await registry.report() is first
    assert check.calls == 1
    clock.advance(0.2)
    await registry.report()
    assert check.calls == 2


async def test_concurrent_probes_share_one_evaluation(registry: HealthRegistry) -> None:
    """Probes arriving during an evaluation wait for it instead of starting their own."""
    check = Counting()
    check.gate = asyncio.Event()
    registry.register("db", check)
    probes = [asyncio.create_task(registry.report()) for _ in range(50)]
    await asyncio.sleep(0)
    check.gate.set()
    reports = await asyncio.gather(*probes)
    assert check.calls == 1
    assert all(r is reports[0] for r in reports)


async def test_a_cancelled_probe_does_not_cancel_the_evaluation(registry: HealthRegistry) -> None:
    """One probe giving up leaves the shared evaluation running for the others."""
    check = Counting()
    check.gate = asyncio.Event()
    registry.register("db", check)
    impatient = asyncio.create_task(registry.report())
    patient = asyncio.create_task(registry.report())
    await asyncio.sleep(0)
    impatient.cancel()
    check.gate.set()
    report = await patient
    assert report.status == "ok"
    assert impatient.cancelled()


async def test_a_degraded_check_degrades_readiness_even_when_critical(
    registry: HealthRegistry,
) -> None:
    """A check returning status "degraded" makes readiness degraded (200), never failing."""
    registry.register("db", Counting())
    registry.register("replica", Counting({"status": "degraded", "reason": "lagging"}))
    report = await registry.report()
    assert report.status == "degraded"
    assert report.http_status == 200
    assert report.checks["replica"]["status"] == "degraded"
    assert report.checks["replica"]["reason"] == "lagging"
    assert report.checks["db"]["status"] == "ok"


async def test_slow_check_times_out_as_failing(registry: HealthRegistry) -> None:
    """A check running past its timeout counts as failed, with a timeout error."""
    check = Counting()
    check.gate = asyncio.Event()  # never set
    registry.register("stuck", check, timeout=0.05)
    report = await registry.report()
    assert report.status == "failing"
    assert report.checks["stuck"]["status"] == "failing"
    assert "timed out" in report.checks["stuck"]["error"]


async def test_statuses_combine(registry: HealthRegistry) -> None:
    """ok + a failing non-critical check is degraded; a failing critical one is failing."""
    registry.register("primary", Counting({"lag_bytes": 0}))
    registry.register("replica-1", Counting(error=ConnectionError("refused")), critical=False)
    report = await registry.report()
    assert report.status == "degraded"
    assert report.http_status == 200
    assert report.checks["replica-1"]["error"] == "ConnectionError: refused"
    assert report.checks["replica-1"]["critical"] is False
    registry.register("redis", Counting(error=OSError("down")))
    report = await registry.report()  # register() invalidated the cache
    assert report.status == "failing"
    assert report.http_status == 503


async def test_extra_fields_are_reported_but_cannot_override(registry: HealthRegistry) -> None:
    """A check's extra fields appear in its entry; reserved keys stay tenfold's."""
    registry.register("replica-0", Counting({"lag_bytes": 12, "status": "fine"}))
    entry = (await registry.report()).checks["replica-0"]
    assert entry["lag_bytes"] == 12
    assert entry["status"] == "ok"
    assert isinstance(entry["latency_ms"], float)


def test_names_are_unique(registry: HealthRegistry) -> None:
    """Registering the same name twice is refused."""
    registry.register("db", Counting())
    with pytest.raises(ValueError, match="already registered"):
        registry.register("db", Counting())


async def test_ready_endpoint_bodies(client, registry: HealthRegistry) -> None:
    """/ready answers 200 when ok, 200 degraded, 503 when a critical check fails."""
    registry.register("primary", Counting({"lag_bytes": 0}))
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"primary": "ok"}}
    assert response.headers["cache-control"] == "no-store"

    registry.register("replica", Counting(error=RuntimeError("x")), critical=False)
    response = await client.get("/ready")
    assert (response.status_code, response.json()["status"]) == (200, "degraded")

    registry.register("queue", Counting(error=RuntimeError("y")))
    response = await client.get("/ready")
    assert (response.status_code, response.json()["status"]) == (503, "failing")


async def test_draining_is_503_at_once(client, registry: HealthRegistry, lifecycle) -> None:
    """After begin_drain /ready is 503 immediately, bypassing the cache and the checks."""
    check = Counting()
    registry.register("primary", check)
    assert (await client.get("/ready")).status_code == 200
    lifecycle.begin_drain()
    response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "draining"
    assert check.calls == 1


async def test_liveness_calls_no_dependency(client, registry: HealthRegistry, lifecycle) -> None:
    """/health is 200 without running any check, even with failing checks or while draining."""
    check = Counting(error=RuntimeError("down"))
    registry.register("primary", check)
    assert (await client.get("/health")).json() == {"status": "ok"}
    lifecycle.begin_drain()
    assert (await client.get("/health")).status_code == 200
    assert check.calls == 0


async def test_public_body_is_statuses_only(registry: HealthRegistry, lifecycle: Lifecycle) -> None:
    """A failing check's error (which may name a host) never reaches an unauthenticated probe."""
    app = FastAPI()
    app.include_router(health_router(registry, lifecycle, token="probe-token"))
    registry.register(
        "cache.redis",
        Counting(error=RuntimeError("Error 111 connecting to 10.1.2.3:6379")),
        critical=False,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        public = await client.get("/ready")
        full = await client.get("/ready", headers={"Authorization": "Bearer probe-token"})
    assert public.status_code == full.status_code == 200
    assert public.json() == {"status": "degraded", "checks": {"cache.redis": "failing"}}
    assert "10.1.2.3" not in public.text
    assert "10.1.2.3" in full.json()["checks"]["cache.redis"]["error"]
