"""Request ids: accepted when well-formed, generated otherwise, echoed and logged."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from fastapi import Response

from tenfold import ObservabilitySettings, current_request_id, set_principal
from tenfold.observability import (
    RequestContextMiddleware,
    configure_logging,
    flush_logs,
    reset_logging,
)

_GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def app(make_app):
    app = make_app()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "seen": current_request_id()}

    @app.get("/me")
    async def me() -> dict[str, str]:
        set_principal("user-7")
        return {"ok": "yes"}

    @app.get("/cached")
    async def cached() -> Response:
        return Response(status_code=304)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    return app


async def test_valid_id_is_echoed_and_logged(app, client_for, log_lines) -> None:
    """A well-formed incoming X-Request-ID is kept, echoed, visible to handlers and logged."""
    response = await client_for(app).get("/items/1", headers={"X-Request-ID": "req-1.A_b"})
    assert response.headers["x-request-id"] == "req-1.A_b"
    assert response.json()["seen"] == "req-1.A_b"
    access = [line for line in log_lines() if line["logger"] == "tenfold.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == "req-1.A_b"
    assert access[0]["route"] == "/items/{item_id}"
    assert access[0]["method"] == "GET"
    assert access[0]["status"] == 200
    assert isinstance(access[0]["duration_ms"], float)
    assert "user_id" not in access[0]


@pytest.mark.parametrize(
    "bad",
    ["x" * 129, "has space", "semi;colon", "new\\nline", "ünïcode", ""],
    ids=["too-long", "space", "semicolon", "escape", "non-ascii", "empty"],
)
async def test_bad_id_is_replaced(app, client_for, log_lines, bad: str) -> None:
    """An incoming X-Request-ID that is too long or has other characters is replaced."""
    response = await client_for(app).get(
        "/items/1", headers=[(b"x-request-id", bad.encode("utf-8"))]
    )
    echoed = response.headers["x-request-id"]
    assert _GENERATED.fullmatch(echoed)
    assert response.json()["seen"] == echoed
    access = [line for line in log_lines() if line["logger"] == "tenfold.access"]
    assert [line["request_id"] for line in access] == [echoed]


async def test_128_characters_is_the_limit(app, client_for) -> None:
    """An id of exactly 128 allowed characters is accepted."""
    incoming = "a" * 128
    response = await client_for(app).get("/items/1", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming


async def test_missing_id_is_generated_fresh_per_request(app, client_for) -> None:
    """Without an incoming id every request gets a different generated one."""
    client = client_for(app)
    ids = {(await client.get("/items/1")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(_GENERATED.fullmatch(i) for i in ids)


@pytest.mark.parametrize(("path", "status"), [("/cached", 304), ("/nope", 404), ("/boom", 500)])
async def test_id_is_echoed_on_every_kind_of_response(
    app, client_for, path: str, status: int
) -> None:
    """304s, router 404s and 500s carry the request id header as well."""
    response = await client_for(app).get(path, headers={"X-Request-ID": "trace-me"})
    assert response.status_code == status
    assert response.headers["x-request-id"] == "trace-me"


async def test_skipped_paths_still_get_an_id(app, client_for, log_lines) -> None:
    """Probe paths are not logged or counted but still carry the request id."""
    response = await client_for(app).get("/health", headers={"X-Request-ID": "probe-1"})
    assert response.headers["x-request-id"] == "probe-1"
    assert [line for line in log_lines() if line["logger"] == "tenfold.access"] == []


async def test_user_id_set_by_the_handler_is_logged(app, client_for, log_lines) -> None:
    """A user id recorded during the request appears on the access line."""
    await client_for(app).get("/me")
    (access,) = [line for line in log_lines() if line["logger"] == "tenfold.access"]
    assert access["user_id"] == "user-7"


async def test_websocket_scope_gets_a_context() -> None:
    """A WebSocket session is served with a bound request id, taken from its headers."""
    seen: list[str | None] = []

    async def inner(scope, receive, send) -> None:
        seen.append(current_request_id())

    middleware = RequestContextMiddleware(inner)
    scope = {"type": "websocket", "path": "/ws", "headers": [(b"x-request-id", b"ws-1")]}
    await middleware(scope, None, None)
    await middleware({**scope, "headers": []}, None, None)
    assert seen[0] == "ws-1"
    assert seen[1] is not None
    assert _GENERATED.fullmatch(seen[1])
    assert current_request_id() is None


async def test_lifespan_scope_passes_through() -> None:
    """Non-HTTP, non-WebSocket scopes reach the app untouched and without a context."""
    seen: list[object] = []

    async def inner(scope, receive, send) -> None:
        seen.append((scope["type"], current_request_id()))

    await RequestContextMiddleware(inner)({"type": "lifespan"}, None, None)
    assert seen == [("lifespan", None)]


async def test_unencodable_user_id_does_not_fail_the_request(make_app, client_for, log_lines):
    """A user id orjson cannot encode (lone surrogate) is logged mangled; the request succeeds."""
    app = make_app()

    @app.get("/odd")
    async def odd() -> dict[str, bool]:
        set_principal("user-\ud800")
        return {"ok": True}

    assert (await client_for(app).get("/odd")).status_code == 200
    (access,) = [line for line in log_lines() if line["event"] == "request"]
    assert access["user_id"].startswith("user-")
    assert access["status"] == 200


async def test_console_access_line(make_app, client_for) -> None:
    """With the console renderer the access line is human-readable and has the route."""
    buffer = io.BytesIO()
    configure_logging(ObservabilitySettings(), console=True, stream=buffer)
    try:
        app = make_app()

        @app.get("/things/{thing_id}")
        async def thing(thing_id: int) -> dict[str, int]:
            return {"id": thing_id}

        await client_for(app).get("/things/9")
        flush_logs()
    finally:
        reset_logging()
    text = buffer.getvalue().decode()
    assert "request" in text
    assert "route=/things/{thing_id}" in text
    assert "status=200" in text
