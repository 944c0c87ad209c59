"""A controllable clock, a registry using it, and a real app serving the probes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware import Middleware

from tenfold import HealthSettings
from tenfold.health import HealthRegistry, InFlightMiddleware, Lifecycle, health_router
from tenfold.observability import RequestContextMiddleware
from tenfold.testing import ManualClock as Clock
from tenfold.web import ProblemMiddleware, install_problem_handlers


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(clock: Clock) -> HealthRegistry:
    return HealthRegistry(HealthSettings(check_timeout=0.5, cache_ttl=1.0), clock=clock)


@pytest.fixture
def lifecycle() -> Lifecycle:
    return Lifecycle()


@pytest.fixture
def app(registry: HealthRegistry, lifecycle: Lifecycle) -> FastAPI:
    app = FastAPI(
        middleware=[
            Middleware(RequestContextMiddleware),
            Middleware(ProblemMiddleware),
            Middleware(InFlightMiddleware, lifecycle=lifecycle),
        ]
    )
    install_problem_handlers(app)
    app.include_router(health_router(registry, lifecycle))
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
