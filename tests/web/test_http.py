"""The kernel's HTTP layer (TENFOLD_HTTP__*) over a real app built with create_app."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, FastAPI, Request

from tenfold import ObservabilitySettings, Settings, create_app
from tenfold.observability import configure_logging, flush_logs, reset_logging

PROXY = ("127.0.0.1", 5000)


def whoami_router() -> APIRouter:
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        assert request.client is not None
        return {"client": request.client.host, "scheme": request.url.scheme}

    return router


def build(tmp_path: Path, **http: Any) -> FastAPI:
    settings = Settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"}, http=http)  # type: ignore[arg-type]
    return create_app(settings, routers=[whoami_router()], configure_logs=False)


@asynccontextmanager
async def serving(
    app: FastAPI, client: tuple[str, int] = PROXY, base_url: str = "http://app"
) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http


@pytest.fixture
def access_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON logging into memory; the value returns the access lines so far."""
    buffer = io.BytesIO()
    configure_logging(ObservabilitySettings(), console=False, stream=buffer)

    def lines() -> list[dict[str, Any]]:
        flush_logs()
        found = [orjson.loads(line) for line in buffer.getvalue().splitlines()]
        return [line for line in found if line["logger"] == "tenfold.access"]

    yield lines
    reset_logging()


FORWARDED = {"X-Forwarded-For": "198.51.100.4, 203.0.113.9", "X-Forwarded-Proto": "https"}


async def test_trusted_proxy_sets_client_scheme_and_access_log(
    tmp_path: Path, access_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    """Behind a trusted proxy, request.client, the scheme and the access line are the client's."""
    app = build(tmp_path, trusted_proxies="127.0.0.0/8")
    async with serving(app) as http:
        seen = (await http.get("/whoami", headers=FORWARDED)).json()
    assert seen == {"client": "203.0.113.9", "scheme": "https"}
    assert [line["client"] for line in access_lines()] == ["203.0.113.9"]


async def test_untrusted_peer_cannot_forward(
    tmp_path: Path, access_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    """With no trusted proxies, forwarding headers change neither the client nor the scheme."""
    app = build(tmp_path)
    async with serving(app) as http:
        seen = (await http.get("/whoami", headers=FORWARDED)).json()
    assert seen == {"client": "127.0.0.1", "scheme": "http"}
    assert [line["client"] for line in access_lines()] == ["127.0.0.1"]


async def test_peer_outside_the_trusted_networks_cannot_forward(tmp_path: Path) -> None:
    """A peer that is not one of the trusted proxies is the client, whatever it forwards."""
    app = build(tmp_path, trusted_proxies="10.0.0.0/8")
    async with serving(app, client=("192.0.2.50", 5000)) as http:
        seen = (await http.get("/whoami", headers=FORWARDED)).json()
    assert seen == {"client": "192.0.2.50", "scheme": "http"}


async def test_forwarded_header_mode_reads_for_and_proto(tmp_path: Path) -> None:
    """forwarded_header=forwarded reads RFC 7239 for= and proto= and ignores X-Forwarded-*."""
    app = build(tmp_path, trusted_proxies="127.0.0.1", forwarded_header="forwarded")
    headers = {**FORWARDED, "Forwarded": 'for="[2001:db8::7]:4711";proto=https'}
    async with serving(app) as http:
        seen = (await http.get("/whoami", headers=headers)).json()
    assert seen == {"client": "2001:db8::7", "scheme": "https"}
