"""Apps served by `tenfold run` in the authentication tests (``--app-dir tests/web``).

``app`` resolves the principal in the authentication slot from ``X-API-Key``.
``app_own_middleware`` authenticates the way many apps do, in its own middleware
(inside the limiter and the HTTP cache), with no resolver given to tenfold.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from tenfold import create_app, current_user_id, set_principal
from tenfold.httpcache import cache_response

KEYS = {"alice-key": "alice", "bob-key": "bob"}
CALLS: Counter[str] = Counter()

router = APIRouter()


@router.get("/me")
@cache_response(max_age=60, per_user=True)
async def me() -> dict[str, Any]:
    CALLS["me"] += 1
    return {"user": current_user_id(), "call": CALLS["me"]}


@router.get("/news")
@cache_response(max_age=60)
async def news() -> dict[str, Any]:
    CALLS["news"] += 1
    return {"headline": "shared", "viewer": current_user_id(), "call": CALLS["news"]}


@router.get("/ping")
async def ping() -> dict[str, Any]:
    return {"user": current_user_id()}


def authenticate(connection: HTTPConnection) -> str | None:
    """The principal's id from X-API-Key; unknown or missing keys are anonymous."""
    key = connection.headers.get("x-api-key")
    return KEYS.get(key) if key else None


app = create_app(routers=[router], authenticate=authenticate)


class OwnAuth:
    """An app's own auth middleware: runs after the limiter and the HTTP cache decided."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            key = dict(scope["headers"]).get(b"x-api-key")
            if key is not None and key.decode() in KEYS:
                set_principal(KEYS[key.decode()])
        await self.app(scope, receive, send)


app_own_middleware = create_app(routers=[router], middleware=[Middleware(OwnAuth)])
