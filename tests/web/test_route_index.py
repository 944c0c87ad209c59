"""One route match per request, shared by the metrics, the rate limiter and the HTTP cache."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter

import tenfold._routes as routes_module
from tenfold import create_app
from tenfold.httpcache import cache_response
from tenfold.ratelimit import Policy, rate_limit
from tenfold.web import ROUTE_MATCH, RouteIndex


def _app() -> Any:
    router = APIRouter(prefix="/api")

    @router.get("/items/{item_id}")
    @cache_response(max_age=60)
    @rate_limit(Policy("items", ["100/minute"]))
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return create_app(routers=[router], configure_logs=False)


def test_every_middleware_shares_the_platform_index() -> None:
    """The observability, HTTP, rate-limit and HTTP-cache layers get the same RouteIndex."""
    app = _app()
    indexes = [m.kwargs["index"] for m in app.user_middleware if "index" in m.kwargs]
    assert len(indexes) == 4
    assert all(index is app.state.tenfold.route_index for index in indexes)
    assert isinstance(indexes[0], RouteIndex)


async def test_each_request_is_matched_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three layers need the route of each request; the route table is searched once per path."""
    searched: list[str] = []
    real = routes_module._match

    def counting(entries: Any, route_path: str, method: str) -> Any:
        searched.append(route_path)
        return real(entries, route_path, method)

    monkeypatch.setattr(routes_module, "_match", counting)
    app = _app()
    seen: list[Any] = []

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        seen.append(scope.get(ROUTE_MATCH))

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=spy)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for item in (1, 2, 3):
                response = await client.get(f"/api/items/{item}")
                assert response.status_code == 200
                assert response.headers["ratelimit-limit"] == "100"
            hit = await client.get("/api/items/1")
            assert "age" in hit.headers  # served by the HTTP cache
    assert searched == ["/api/items/1", "/api/items/2", "/api/items/3"]
    assert [m.template for m in seen] == ["/api/items/{item_id}"] * 4
    metrics = (await _metrics(app)).text
    assert 'route="/api/items/{item_id}"' in metrics


async def _metrics(app: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/metrics")


async def test_plain_starlette_routes_are_named_in_metrics() -> None:
    """FastAPI's /docs and /openapi.json (plain routes) count under their paths; a 404 does not."""
    app = create_app(configure_logs=False)
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://t")
    async with app.router.lifespan_context(app), client:
        for path in ("/docs", "/openapi.json", "/nowhere"):
            await client.get(path)
        metrics = (await client.get("/metrics")).text
    assert 'route="/docs",status="200"' in metrics
    assert 'route="/openapi.json",status="200"' in metrics
    assert 'route="<unmatched>",status="404"' in metrics
    assert 'route="<unmatched>",status="200"' not in metrics
