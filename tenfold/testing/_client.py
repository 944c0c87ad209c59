"""``app_client(app)``: an httpx client on an app, with its lifespan run around it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

__all__ = ["app_client"]


@asynccontextmanager
async def app_client(
    app: Any,
    *,
    base_url: str = "http://testserver",
    client: tuple[str, int] = ("127.0.0.1", 50000),
    headers: Mapping[str, str] | None = None,
    raise_app_exceptions: bool = False,
) -> AsyncIterator[httpx.AsyncClient]:
    """Start ``app`` (its platform: database, cache, ...), yield a client, stop it.

    Requests go to the app in process (``httpx.ASGITransport``) from the
    ``client`` address, through the whole middleware stack, so a test sees
    exactly what a client would: problem+json errors, rate limits, headers.
    An exception inside the app is answered as the 500 a client would get;
    ``raise_app_exceptions=True`` raises it in the test instead.
    """
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(
            app=app, client=client, raise_app_exceptions=raise_app_exceptions
        )
        async with httpx.AsyncClient(
            transport=transport, base_url=base_url, headers=headers
        ) as http:
            yield http
