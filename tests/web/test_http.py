"""The kernel's HTTP layer (TENFOLD_HTTP__*) over a real app built with create_app."""

from __future__ import annotations

import io
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, FastAPI, Request, Response, WebSocket
from pydantic import BaseModel

from tenfold import ObservabilitySettings, Settings, create_app
from tenfold.observability import configure_logging, flush_logs, reset_logging
from tenfold.web import MiB

# starlette's TestClient warns on import that it wants httpx2; these tests do not depend on it.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

PROXY = ("127.0.0.1", 5000)


def whoami_router() -> APIRouter:
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        assert request.client is not None
        return {"client": request.client.host, "scheme": request.url.scheme}

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        assert websocket.client is not None
        await websocket.send_json({"client": websocket.client.host, "scheme": websocket.url.scheme})
        await websocket.close()

    return router


class Doc(BaseModel):
    data: Any = None


def body_router(handled: list[int]) -> APIRouter:
    """Routes that record the size of each body they were given."""
    router = APIRouter()

    @router.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        handled.append(len(await request.body()))
        return {"size": handled[-1]}

    @router.post("/upload", max_body_size=10 * MiB)
    async def upload(request: Request) -> dict[str, int]:
        handled.append(len(await request.body()))
        return {"size": handled[-1]}

    @router.post("/tiny", max_body_size=100)
    async def tiny(request: Request) -> dict[str, int]:
        handled.append(len(await request.body()))
        return {"size": handled[-1]}

    @router.post("/doc")
    async def doc(body: Doc) -> dict[str, str]:
        handled.append(0)
        return {"ok": "yes"}

    @router.get("/framed")
    async def framed() -> Response:
        return Response("x", headers={"X-Frame-Options": "SAMEORIGIN", "Vary": "Accept"})

    return router


def build(tmp_path: Path, *routers: APIRouter, **http: Any) -> FastAPI:
    settings = Settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"}, http=http)  # type: ignore[arg-type]
    return create_app(settings, routers=[whoami_router(), *routers], configure_logs=False)


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


class Body:
    """A request body streamed in ``chunk``-byte pieces, counting what the app pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            piece = b"x" * min(self.chunk, self.total - self.pulled)
            self.pulled += len(piece)
            yield piece


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_announced_body_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    """A 50 MB Content-Length gets 413 problem+json before the body or the handler is touched."""
    handled: list[int] = []
    app = build(tmp_path, body_router(handled))
    body = Body(50 * MiB)
    async with serving(app) as http:
        response = await http.post("/echo", content=body, headers={"Content-Length": str(50 * MiB)})
    body_json = assert_problem(response, 413)
    assert str(1 * MiB) in body_json["detail"]
    assert response.headers["connection"] == "close"
    assert handled == []
    assert body.pulled <= body.chunk


async def test_default_limit_refuses_a_10_mb_body(tmp_path: Path) -> None:
    """With no setting the limit is 1 MiB: a 10 MB body is refused, a 1 MiB one served."""
    handled: list[int] = []
    app = build(tmp_path, body_router(handled))
    async with serving(app) as http:
        refused = await http.post("/echo", content=b"x" * (10 * MiB))
        served = await http.post("/echo", content=b"x" * MiB)
    assert_problem(refused, 413)
    assert served.json() == {"size": MiB}
    assert handled == [MiB]


async def test_chunked_body_is_counted_and_stopped(tmp_path: Path) -> None:
    """A body without Content-Length is refused once the count passes the limit, not read whole."""
    handled: list[int] = []
    app = build(tmp_path, body_router(handled), max_body_size=256 * 1024)
    body = Body(50 * MiB)
    async with serving(app) as http:
        response = await http.post("/echo", content=body)
    assert_problem(response, 413)
    assert handled == []
    assert body.pulled <= 256 * 1024 + body.chunk


async def test_route_max_body_size_replaces_the_default(tmp_path: Path) -> None:
    """A route's own FastAPI max_body_size raises or lowers the limit for that route only."""
    handled: list[int] = []
    app = build(tmp_path, body_router(handled))
    async with serving(app) as http:
        big = await http.post("/upload", content=b"x" * (3 * MiB))
        chunked_big = await http.post("/upload", content=Body(3 * MiB))
        too_big = await http.post("/upload", content=b"x" * (11 * MiB))
        chunked_too_big = await http.post("/upload", content=Body(11 * MiB))
        tiny = await http.post("/tiny", content=b"x" * 101)
        default = await http.post("/echo", content=b"x" * (3 * MiB))
    assert big.json() == chunked_big.json() == {"size": 3 * MiB}
    assert_problem(too_big, 413)
    assert_problem(chunked_too_big, 413)
    assert_problem(tiny, 413)
    assert_problem(default, 413)
    assert handled == [3 * MiB, 3 * MiB]


async def test_include_router_max_body_size_applies(tmp_path: Path) -> None:
    """max_body_size given to include_router limits that router's routes."""
    handled: list[int] = []
    settings = Settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})
    app = create_app(settings, configure_logs=False)
    app.include_router(body_router(handled), prefix="/big", max_body_size=4 * MiB)
    async with serving(app) as http:
        served = await http.post("/big/echo", content=b"x" * (2 * MiB))
        refused = await http.post("/big/echo", content=b"x" * (5 * MiB))
    assert served.json() == {"size": 2 * MiB}
    assert_problem(refused, 413)


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


async def test_json_nesting_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    """A JSON body nested past max_json_depth gets 400 problem+json; at the limit it is served."""
    handled: list[int] = []
    app = build(tmp_path, body_router(handled), max_json_depth=8)
    async with serving(app) as http:
        at_limit = await http.post("/doc", json={"data": nested(7)})
        too_deep = await http.post("/doc", json={"data": nested(8)})
        bomb = await http.post(
            "/doc", content=b"[" * 100_000, headers={"Content-Type": "application/json"}
        )
    assert at_limit.status_code == 200
    assert "8 levels" in assert_problem(too_deep, 400)["detail"]
    assert_problem(bomb, 400)
    assert handled == [0]


async def test_json_string_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    """A JSON string (value or key) longer than max_json_string gets 400; escapes count once."""
    handled: list[int] = []
    app = build(tmp_path, body_router(handled), max_json_string=100)
    escaped = b'{"data": "' + b"\\u0041" * 100 + b'"}'
    async with serving(app) as http:
        long_value = await http.post("/doc", json={"data": "x" * 101})
        long_key = await http.post("/doc", json={"data": {"k" * 101: 1}})
        escapes = await http.post(
            "/doc", content=escaped, headers={"Content-Type": "application/json"}
        )
        text = await http.post(
            "/echo", content=b'"' + b"x" * 500 + b'"', headers={"Content-Type": "text/plain"}
        )
    assert "100 characters" in assert_problem(long_value, 400)["detail"]
    assert_problem(long_key, 400)
    assert escapes.status_code == 200
    assert text.json() == {"size": 502}


async def test_hosts_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    """With allowed_hosts set another Host gets a 400 problem; listed hosts and subdomains pass."""
    app = build(tmp_path, allowed_hosts="api.example.com,*.example.org")
    async with serving(app, base_url="http://api.example.com:8000") as http:
        listed = await http.get("/whoami")
        sub = await http.get("/whoami", headers={"Host": "a.b.example.org"})
        other = await http.get("/whoami", headers={"Host": "evil.example.net"})
        bare = await http.get("/whoami", headers={"Host": "example.org"})
    assert listed.status_code == sub.status_code == 200
    assert "host" in assert_problem(other, 400)["detail"].lower()
    assert_problem(bare, 400)


async def test_any_host_by_default(tmp_path: Path) -> None:
    """With allowed_hosts empty every Host is served."""
    app = build(tmp_path)
    async with serving(app) as http:
        response = await http.get("/whoami", headers={"Host": "whatever.invalid"})
    assert response.status_code == 200


CORS = {
    "cors_origins": "https://app.example.com",
    "cors_methods": "GET,POST,DELETE",
    "cors_headers": "Content-Type,X-Trace",
    "cors_expose_headers": "X-Request-ID",
    "cors_credentials": True,
}


async def test_cors_is_off_by_default(tmp_path: Path) -> None:
    """With no origins configured no response carries CORS headers, no preflight is answered."""
    app = build(tmp_path)
    headers = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    async with serving(app) as http:
        simple = await http.get("/whoami", headers={"Origin": "https://app.example.com"})
        preflight = await http.options("/whoami", headers=headers)
    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405


async def test_cors_allows_listed_origins_only(tmp_path: Path) -> None:
    """An allowed origin gets its CORS headers; another is served without them; both vary."""
    app = build(tmp_path, **CORS)
    async with serving(app) as http:
        allowed = await http.get("/whoami", headers={"Origin": "https://app.example.com"})
        other = await http.get("/whoami", headers={"Origin": "https://evil.example.com"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert allowed.headers["access-control-expose-headers"] == "X-Request-ID"
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers
    assert allowed.headers["vary"] == other.headers["vary"] == "Origin"


async def test_cors_preflight(tmp_path: Path) -> None:
    """An allowed preflight gets 204 with the policy; a method or header not listed gets 403."""
    app = build(tmp_path, **CORS)
    origin = {"Origin": "https://app.example.com"}
    async with serving(app) as http:
        ok = await http.options(
            "/whoami",
            headers={
                **origin,
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "content-type, x-trace",
            },
        )
        bad_method = await http.options(
            "/whoami", headers={**origin, "Access-Control-Request-Method": "PUT"}
        )
        bad_header = await http.options(
            "/whoami",
            headers={
                **origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        bad_origin = await http.options(
            "/whoami",
            headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
        )
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert ok.headers["access-control-allow-methods"] == "GET, POST, DELETE"
    assert ok.headers["access-control-allow-headers"] == "Content-Type, X-Trace"
    assert ok.headers["access-control-max-age"] == "600"
    for refused in (bad_method, bad_header, bad_origin):
        assert_problem(refused, 403)
        assert "access-control-allow-origin" not in refused.headers


async def test_host_is_checked_before_cors(tmp_path: Path) -> None:
    """A preflight for a host the app does not serve is refused as a bad host, not answered."""
    app = build(tmp_path, allowed_hosts="api.example.com", **CORS)
    headers = {
        "Host": "evil.example.net",
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "GET",
    }
    async with serving(app) as http:
        response = await http.options("/whoami", headers=headers)
    assert "host" in assert_problem(response, 400)["detail"].lower()
    assert "access-control-allow-origin" not in response.headers


async def test_cors_any_origin_without_credentials(tmp_path: Path) -> None:
    """cors_origins='*' answers any origin with '*' and needs no Vary."""
    app = build(tmp_path, cors_origins="*")
    async with serving(app) as http:
        response = await http.get("/whoami", headers={"Origin": "https://anyone.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "vary" not in response.headers


SECURITY = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}


async def test_security_headers_on_every_response(tmp_path: Path) -> None:
    """Responses, problems and 404s carry the security headers; HSTS only over HTTPS."""
    app = build(tmp_path)
    async with serving(app) as http:
        served = await http.get("/whoami")
        missing = await http.get("/nowhere")
    for response in (served, missing):
        assert {k: response.headers.get(k) for k in SECURITY} == SECURITY
        assert "strict-transport-security" not in response.headers
    async with serving(app, base_url="https://app") as https:
        secure = await https.get("/whoami")
    assert secure.headers["strict-transport-security"] == "max-age=31536000"


async def test_hsts_behind_a_trusted_proxy_that_says_https(tmp_path: Path) -> None:
    """HSTS is sent when a trusted proxy reports https, never on an untrusted peer's say-so."""
    trusting = build(tmp_path, trusted_proxies="127.0.0.1", hsts_include_subdomains=True)
    untrusting = build(tmp_path)
    said = {"X-Forwarded-Proto": "https"}
    async with serving(trusting) as http:
        proxied = await http.get("/whoami", headers=said)
    async with serving(untrusting) as http:
        spoofed = await http.get("/whoami", headers=said)
    hsts = "max-age=31536000; includeSubDomains"
    assert proxied.headers["strict-transport-security"] == hsts
    assert "strict-transport-security" not in spoofed.headers


async def test_app_headers_win_and_each_header_can_be_turned_off(tmp_path: Path) -> None:
    """A header the route set itself is kept; empty or false settings send nothing."""
    app = build(tmp_path, body_router([]), **{"referrer_policy": "", "content_type_options": False})
    async with serving(app) as http:
        framed = await http.get("/framed")
    assert framed.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert "referrer-policy" not in framed.headers
    assert "x-content-type-options" not in framed.headers
    assert framed.headers["content-security-policy"] == "frame-ancestors 'none'"


def test_websocket_client_and_host(tmp_path: Path) -> None:
    """WebSockets get the forwarded client and scheme too, and are closed for a host not served."""
    app = build(tmp_path, trusted_proxies="127.0.0.1", allowed_hosts="api.example.com")
    headers = {**FORWARDED, "Host": "api.example.com"}
    with TestClient(app, client=PROXY) as client:
        with client.websocket_connect("/ws", headers=headers) as ws:
            seen = ws.receive_json()
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/ws", headers={"Host": "evil.example.net"}),
        ):
            pass
    assert seen == {"client": "203.0.113.9", "scheme": "wss"}
    assert refused.value.code == 1008


async def test_security_headers_without_the_request_context_layer() -> None:
    """HttpMiddleware wired alone (no ObservabilityMiddleware outside) adds the headers itself."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tenfold.web import HttpMiddleware

    async def page(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi", headers={"X-Frame-Options": "SAMEORIGIN"})

    app = HttpMiddleware(Starlette(routes=[Route("/", page)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers.get_list("x-frame-options") == ["SAMEORIGIN"]  # the route's own wins
