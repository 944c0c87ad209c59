"""Readiness checks: registered by capabilities, evaluated together, cached briefly.

A load balancer, an orchestrator and a monitoring system may all probe every
instance every second. Without care, each probe would open a database
connection: a probe storm at the worst moment. So a report is reused for
``HealthSettings.cache_ttl`` seconds, and probes arriving while one is being
evaluated wait for that evaluation instead of starting their own (single
flight). Each check runs under its own timeout, all of them concurrently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tenfold._settings import HealthSettings
from tenfold.observability import get_logger

__all__ = ["Check", "HealthRegistry", "HealthReport"]

#: A check: an async callable returning extra fields (e.g. ``{"lag_bytes": 12}``)
#: or ``None``. Raising, or running past its timeout, means it failed. Returning
#: ``{"status": "degraded", ...}`` means it works but is impaired (a lagging replica).
Check = Callable[[], Awaitable[Mapping[str, Any] | None]]
Status = Literal["ok", "degraded", "failing"]

_RESERVED = frozenset({"status", "critical", "latency_ms", "error"})
_MAX_ERROR = 200

_log = get_logger("tenfold.health")


@dataclass(frozen=True, slots=True)
class _Registered:
    name: str
    check: Check
    critical: bool
    timeout: float


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One evaluation: the overall status and each check's result."""

    status: Status
    checks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        """200 when ok or degraded, 503 when a critical check failed."""
        return 503 if self.status == "failing" else 200

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "checks": {k: dict(v) for k, v in self.checks.items()}}


class HealthRegistry:
    """The readiness checks of one application.

    ``clock`` (seconds, monotonic) is there so tests can move time instead of
    sleeping through the cache TTL.
    """

    def __init__(
        self, settings: HealthSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._checks: dict[str, _Registered] = {}
        self._cached: HealthReport | None = None
        self._cached_at = 0.0
        self._inflight: asyncio.Future[HealthReport] | None = None

    def __repr__(self) -> str:
        return f"HealthRegistry(checks={list(self._checks)!r})"

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    def register(
        self, name: str, check: Check, *, critical: bool = True, timeout: float | None = None
    ) -> None:
        """Add a check. A failing critical check makes readiness 503; others degrade it."""
        if name in self._checks:
            raise ValueError(f"a health check named {name!r} is already registered")
        timeout = self.settings.check_timeout if timeout is None else timeout
        self._checks[name] = _Registered(name, check, critical, timeout)
        self.invalidate()

    def unregister(self, name: str) -> None:
        """Remove a check (e.g. a replica taken out of the configuration)."""
        self._checks.pop(name, None)
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the cached report; the next probe evaluates afresh."""
        self._cached = None

    async def report(self) -> HealthReport:
        """The current report: cached, or shared with an evaluation in progress."""
        cached = self._cached
        if cached is not None and self._clock() - self._cached_at < self.settings.cache_ttl:
            return cached
        inflight = self._inflight
        if inflight is None:
            inflight = self._inflight = asyncio.ensure_future(self._evaluate())
            inflight.add_done_callback(self._evaluated)
        # shield: a probe that gives up must not cancel the evaluation the others await.
        return await asyncio.shield(inflight)

    def _evaluated(self, future: asyncio.Future[HealthReport]) -> None:
        self._inflight = None
        if not future.cancelled() and future.exception() is None:
            self._cached = future.result()
            self._cached_at = self._clock()

    async def _evaluate(self) -> HealthReport:
        checks = list(self._checks.values())
        results = await asyncio.gather(*(_run(c) for c in checks))
        status: Status = "ok"
        for check, result in zip(checks, results, strict=True):
            if result["status"] == "ok":
                continue
            if result["status"] == "degraded":
                _log.warning("health_check_degraded", check=check.name, reason=result.get("reason"))
            else:
                _log.warning("health_check_failed", check=check.name, error=result.get("error"))
            if check.critical and result["status"] == "failing":
                status = "failing"
            elif status == "ok":
                status = "degraded"
        return HealthReport(status, {c.name: r for c, r in zip(checks, results, strict=True)})


async def _run(check: _Registered) -> dict[str, Any]:
    start = time.perf_counter()
    extra: Mapping[str, Any] | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(check.timeout):
            extra = await check.check()
    except TimeoutError:
        error = f"timed out after {check.timeout:g}s"
    except Exception as exc:  # a raising check is a failing check, reported below
        error = _describe(exc)
    status = "ok" if error is None else "failing"
    if status == "ok" and isinstance(extra, Mapping) and extra.get("status") == "degraded":
        status = "degraded"
    result: dict[str, Any] = {
        "status": status,
        "critical": check.critical,
        "latency_ms": round((time.perf_counter() - start) * 1000.0, 2),
    }
    if error is not None:
        result["error"] = error
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            if key not in _RESERVED:
                result[key] = value
    return result


def _describe(exc: Exception) -> str:
    text = str(exc)
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described[:_MAX_ERROR]
