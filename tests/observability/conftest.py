"""Fixtures for the observability tests: captured log lines and a small real app."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from starlette.middleware import Middleware

from tenfold import ObservabilitySettings
from tenfold.observability import (
    Metrics,
    ObservabilityMiddleware,
    RequestContextMiddleware,
    TelemetryMiddleware,
    configure_logging,
    flush_logs,
    metrics_route,
    reset_logging,
)
from tenfold.web import ProblemMiddleware, install_problem_handlers

LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """JSON logging into memory; call the fixture's value to read the lines so far."""
    buffer = io.BytesIO()
    configure_logging(ObservabilitySettings(), console=False, stream=buffer)

    def lines() -> list[dict[str, Any]]:
        flush_logs()
        return [orjson.loads(line) for line in buffer.getvalue().splitlines()]

    yield lines
    reset_logging()


@pytest.fixture(params=["separate", "combined"])
def make_app(request: pytest.FixtureRequest) -> Callable[..., FastAPI]:
    """Builds apps with the two middleware stacked, or ObservabilityMiddleware alone."""

    def make(metrics: Metrics | None = None, *, access_log: bool = True) -> FastAPI:
        return build_app(metrics, access_log=access_log, combined=request.param == "combined")

    return make


def build_app(
    metrics: Metrics | None = None, *, access_log: bool = True, combined: bool = False
) -> FastAPI:
    """FastAPI with tenfold's request id, telemetry and problem layers and /metrics."""
    if combined:
        layers = [Middleware(ObservabilityMiddleware, metrics=metrics, access_log=access_log)]
    else:
        layers = [
            Middleware(RequestContextMiddleware),
            Middleware(TelemetryMiddleware, metrics=metrics, access_log=access_log),
        ]
    app = FastAPI(middleware=[*layers, Middleware(ProblemMiddleware)])
    install_problem_handlers(app)
    if metrics is not None:
        app.router.routes.append(metrics_route(metrics))
    return app


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[FastAPI], httpx.AsyncClient]]:
    """Makes httpx clients talking to an app in-process; closes them afterwards."""
    clients: list[httpx.AsyncClient] = []

    def make(app: FastAPI) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def check_exposition() -> Callable[[str], dict[str, list[Any]]]:
    """Validates a /metrics body (promtool when installed) and returns samples by name."""
    return validate_exposition


def validate_exposition(text: str) -> dict[str, list[Any]]:
    promtool = shutil.which("promtool")
    if promtool is not None:
        proc = subprocess.run(
            [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()
    elif os.environ.get("CI", "").lower() == "true":
        pytest.fail("promtool is missing; install the Debian package 'prometheus' (make deps)")
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples
