"""``Build.websocket``: an endpoint on the lean lane, behind the kernel's WebSocket layers only."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tenfold import CoreSettings, Extension, Principal, create_app, current_principal
from tenfold._context import current_request_id
from tenfold.testing import serve_asgi

pytestmark = pytest.mark.usefixtures("clean_env")


async def describe(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts, then says what the kernel layers set up for the connection."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    principal = current_principal()
    about = {
        "request_id": current_request_id(),
        "client": scope["client"][0],
        "principal": principal.id if principal is not None else None,
        "seen_by_app_middleware": scope.get("seen_by_app_middleware", False),
    }
    await send({"type": "websocket.send", "text": orjson.dumps(about).decode()})
    await send({"type": "websocket.close", "code": 1000})


class LaneExtension(Extension):
    name = "lane"

    def build(self, build: Any) -> None:
        build.websocket("/lane", describe)


class Marking:
    """An application middleware that marks every scope it sees."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["seen_by_app_middleware"] = True
        await self.app(scope, receive, send)


async def authenticate(connection: Any) -> Principal | None:
    token = connection.headers.get("x-token")
    return Principal(id=token) if token else None


def lane_app(**http: Any) -> Any:
    settings = CoreSettings.load(
        http={"trusted_proxies": ["127.0.0.1/32"], **http}, app={"name": "lane"}
    )
    return create_app(
        settings,
        extensions=[LaneExtension()],
        middleware=[Middleware(Marking)],
        authenticate=authenticate,
        configure_logs=False,
    )


async def test_a_lane_connection_has_the_kernel_layers_and_skips_the_app_middleware() -> None:
    """The request id is bound, the client is resolved behind a trusted proxy, the principal
    comes from the authentication slot, and the app's own middleware never sees it."""
    async with serve_asgi(lane_app()) as base:
        url = base.replace("http://", "ws://") + "/lane"
        headers = {"X-Request-ID": "req-lane-1", "X-Forwarded-For": "10.1.2.3", "X-Token": "u7"}
        async with connect(url, additional_headers=headers, open_timeout=5) as ws:
            about = orjson.loads(await ws.recv())
    assert about == {
        "request_id": "req-lane-1",
        "client": "10.1.2.3",
        "principal": "u7",
        "seen_by_app_middleware": False,
    }


async def test_the_lane_applies_the_allowed_hosts() -> None:
    """A Host outside TENFOLD_HTTP__ALLOWED_HOSTS is refused on the lane as everywhere."""
    async with serve_asgi(lane_app(allowed_hosts=["app.example"])) as base:
        url = base.replace("http://", "ws://") + "/lane"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, open_timeout=5):
                pass
    assert refused.value.response.status_code == 403


def test_one_path_takes_one_lane_endpoint() -> None:
    """Two endpoints for one path is a build error, not a silent shadowing."""

    class Twice(Extension):
        name = "twice"

        def build(self, build: Any) -> None:
            build.websocket("/lane", describe)
            build.websocket("/lane", describe)

    with pytest.raises(ValueError, match="/lane"):
        create_app(extensions=[Twice()], configure_logs=False)


class SlotFiller(Extension):
    """Fills the authentication slot from an extension, as tenfold.auth does."""

    name = "slot_filler"

    def build(self, build: Any) -> None:
        build.authenticate(authenticate)
        build.websocket("/lane", describe)


async def test_an_extension_fills_the_authentication_slot_for_requests_and_the_lane() -> None:
    """``build.authenticate`` is the app's resolver: a WebSocket on the lane gets its
    principal, and so does an HTTP route."""
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/me")
    async def me() -> dict[str, Any]:
        principal = current_principal()
        return {"id": principal.id if principal is not None else None}

    app = create_app(extensions=[SlotFiller()], routers=[router], configure_logs=False)
    async with serve_asgi(app) as base:
        url = base.replace("http://", "ws://") + "/lane"
        async with connect(url, additional_headers={"X-Token": "u9"}, open_timeout=5) as ws:
            about = orjson.loads(await ws.recv())
        import httpx

        async with httpx.AsyncClient(base_url=base) as client:
            me_response = await client.get("/me", headers={"X-Token": "u9"})
    assert about["principal"] == "u9"
    assert me_response.json() == {"id": "u9"}


def test_one_authenticator_per_app() -> None:
    """An extension's authenticator and create_app(authenticate=...) together are refused."""
    from tenfold import ConfigurationError

    with pytest.raises(ConfigurationError, match="authentication slot"):
        create_app(extensions=[SlotFiller()], authenticate=authenticate, configure_logs=False)
