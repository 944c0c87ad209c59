"""``/health`` (liveness) and ``/ready`` (readiness) endpoints.

``/ready`` answers everyone with statuses only: the overall one and each
check's (``{"status": "degraded", "checks": {"db.primary": "ok", ...}}``).
The full report (errors, latencies, lag figures) names hosts and versions, so
it is shown only to a request bearing ``token`` (``TENFOLD_HEALTH__TOKEN``):
``Authorization: Bearer <token>``. Without a token configured, nobody gets
it over HTTP; ``tenfold check`` prints it.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from pydantic import SecretStr
from starlette.responses import Response

from tenfold._bearer import bearer_matches
from tenfold.health._lifecycle import Lifecycle
from tenfold.health._registry import HealthRegistry

__all__ = ["PROBE_PATHS", "health_router"]

#: The liveness and readiness paths ``health_router`` serves by default.
PROBE_PATHS = ("/health", "/ready")

_NO_STORE = {"Cache-Control": "no-store"}
_ALIVE = orjson.dumps({"status": "ok"})
_DRAINING = orjson.dumps({"status": "draining", "checks": {}})


def health_router(
    registry: HealthRegistry,
    lifecycle: Lifecycle,
    *,
    health_path: str = "/health",
    ready_path: str = "/ready",
    token: SecretStr | str | None = None,
) -> APIRouter:
    """A router with the liveness and readiness probes.

    Liveness calls nothing: a database outage must not make an orchestrator
    restart every instance. It stays 200 while draining, too. Readiness is
    503 while draining (without evaluating checks) or when a critical check
    fails, and 200 with ``"status": "degraded"`` when only others fail. Its
    full report goes only to requests bearing ``token``.
    """
    router = APIRouter(tags=["health"])

    @router.get(health_path, include_in_schema=False)
    async def health() -> Response:
        return _json(_ALIVE, 200)

    @router.get(ready_path, include_in_schema=False)
    async def ready(request: Request) -> Response:
        if lifecycle.draining:
            return _json(_DRAINING, 503)
        report = await registry.report()
        if lifecycle.draining:  # drain began while the checks ran
            return _json(_DRAINING, 503)
        if bearer_matches(request, token):
            body = report.to_dict()
        else:
            checks = {name: result.get("status") for name, result in report.checks.items()}
            body = {"status": report.status, "checks": checks}
        return _json(orjson.dumps(body), report.http_status)

    return router


def _json(body: bytes, status: int) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=_NO_STORE)
