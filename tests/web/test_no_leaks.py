"""What a client sees while a dependency is down names no host, port or driver text."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter

from tenfold import RedisSettings, Settings, create_app
from tenfold.testing import RedisServer

LEAKS = ("127.0.0.1", "Error 111", "Connection refused", "ConnectionError:", "Traceback")


async def test_redis_outage_answers_without_internal_details(
    redis_server: RedisServer, tmp_path: Any, monkeypatch: Any
) -> None:
    """With Redis stopped, a fail-closed rate-limited write is a 503 that leaks nothing."""
    monkeypatch.chdir(tmp_path)
    router = APIRouter()

    @router.post("/orders")
    async def order() -> dict[str, bool]:
        return {"ok": True}

    settings = Settings.load(
        redis=RedisSettings(url=redis_server.url, connect_timeout=0.2, socket_timeout=0.2),
        ratelimit={"default": ["100/minute"]},
    )
    app = create_app(settings, routers=[router], configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.post("/orders")).status_code == 200
            await asyncio.to_thread(redis_server.stop)
            try:
                refused = await client.post("/orders")
                ready = await client.get("/ready")
            finally:
                await asyncio.to_thread(redis_server.start)
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    for body in (refused.text, ready.text):
        for leak in (*LEAKS, str(redis_server.port)):
            assert leak not in body, (leak, body)
