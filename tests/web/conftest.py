"""A real FastAPI app with tenfold's error layers, and log capture."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.middleware import Middleware

from tenfold import (
    DatabaseError,
    DependencyUnavailable,
    NotFound,
    ObservabilitySettings,
    ShuttingDown,
)
from tenfold.observability import (
    RequestContextMiddleware,
    TelemetryMiddleware,
    configure_logging,
    flush_logs,
    reset_logging,
)
from tenfold.web import ProblemMiddleware, install_problem_handlers


class Signup(BaseModel):
    email: str = Field(pattern=r"^[^@]+@[^@]+$")
    password: str = Field(min_length=12)
    age: int


class _FailingMiddleware:
    """Raises from *outside* FastAPI's exception handlers, like a middleware would."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/middleware-down":
            raise DependencyUnavailable(dependency="redis", retry_after=3)
        await self.app(scope, receive, send)


def build_app() -> FastAPI:
    """FastAPI + request id, telemetry, ProblemMiddleware and the problem handlers."""
    app = FastAPI(
        middleware=[
            Middleware(RequestContextMiddleware),
            Middleware(TelemetryMiddleware, metrics=None, access_log=True),
            Middleware(ProblemMiddleware),
            Middleware(_FailingMiddleware),
        ]
    )
    install_problem_handlers(app)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/signup")
    async def signup(body: Signup) -> dict[str, str]:
        return {"email": body.email}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 leaked into an exception")

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("no widget 42", widget=42)

    @app.get("/db-down")
    async def db_down() -> None:
        raise DependencyUnavailable(dependency="database:primary", retry_after=2.4)

    @app.get("/db-error")
    async def db_error() -> None:
        raise DatabaseError("relation users_secret does not exist")

    @app.get("/draining")
    async def draining() -> None:
        raise ShuttingDown("the instance is shutting down")

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418, detail={"brew": "no"}, headers={"X-Kettle": "cold"})

    @app.get("/not-modified")
    async def not_modified() -> None:
        raise HTTPException(304)

    @app.get("/streamed-then-failed")
    async def streamed() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"partial"
            raise RuntimeError("failed mid-stream")

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


@pytest.fixture
def app() -> FastAPI:
    return build_app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON logging into memory; call the fixture's value to read the lines so far."""
    buffer = io.BytesIO()
    configure_logging(ObservabilitySettings(), console=False, stream=buffer)

    def lines() -> list[dict[str, Any]]:
        flush_logs()
        return [orjson.loads(line) for line in buffer.getvalue().splitlines()]

    yield lines
    reset_logging()
