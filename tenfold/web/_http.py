"""``HttpMiddleware``: the kernel's HTTP layer, from ``TENFOLD_HTTP__*``.

It sits just inside the request-id layer (``Slot.HTTP``), so whatever it
answers carries the request id and is logged and counted, and before
authentication, rate limits and the application see the request. In order:

1. **Client address**: behind a trusted proxy, ``scope["client"]`` and
   ``scope["scheme"]`` become what the proxy reported, so ``request.client``,
   address-keyed rate limits and the access log see the same client without
   each parsing forwarding headers again.
2. **Allowed hosts**: a Host outside ``allowed_hosts`` gets 400.
3. **CORS**: preflights are answered here; allowed origins get their headers.
4. **Body limits**: a ``Content-Length`` over the route's limit gets 413
   before anything reads the body; a chunked body is counted as it is read
   and a JSON body checked for depth and string length (``_body.py``). The
   limit is the route's own FastAPI ``max_body_size`` if it has one, else
   ``max_body_size``; the route is matched only when some route has one.
5. **Security headers** on every response (HSTS only over HTTPS); a header
   the application set itself is left alone.

One layer rather than five because each ASGI layer costs a call and a ``send``
wrapper per request (see docs/benchmarks.md). Everything it can know from the
settings is encoded when it is built; per request it makes one pass over the
request headers and one header list for the response.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenfold._http_settings import HttpSettings
from tenfold._routes import RouteIndex, RouteMatch
from tenfold._scope import RESPONSE_HEADERS
from tenfold.web._body import LimitedBody, body_too_large, is_json
from tenfold.web._clientip import ClientAddress, parse_networks
from tenfold.web._cors import Cors
from tenfold.web._hosts import AllowedHosts
from tenfold.web._problems import problem_for_exception, problem_response

__all__ = ["HttpMiddleware"]

Header = tuple[bytes, bytes]
_WS_SCHEMES = {"http": "ws", "https": "wss"}
_LENGTH, _CHUNKED, _TYPE, _HOST, _ORIGIN = range(5)
_BAD_HOST = "The Host header names a host this application does not serve."


class HttpMiddleware:
    """The client behind trusted proxies, allowed hosts, CORS, body limits, security headers."""

    def __init__(
        self, app: ASGIApp, *, settings: HttpSettings | None = None, index: RouteIndex | None = None
    ) -> None:
        self.app = app
        s = self.settings = settings if settings is not None else HttpSettings()
        trusted = parse_networks(s.trusted_proxies)
        #: None when no proxy is trusted: the peer is the client, nothing to rewrite.
        self.address = ClientAddress(trusted, s.forwarded_header) if trusted else None
        any_host = not s.allowed_hosts or "*" in s.allowed_hosts
        self.hosts = None if any_host else AllowedHosts(s.allowed_hosts)
        self.cors = Cors(s) if s.cors_origins else None
        self.max_body_size = s.max_body_size
        self.index = index or RouteIndex()
        self._json = (s.max_json_depth, s.max_json_string)
        self._plain, self._https = _security_headers(s)
        self._names = frozenset(name for name, _ in self._https) | _CORS_NAMES
        self._wanted = {b"content-length": _LENGTH, b"transfer-encoding": _CHUNKED}
        self._wanted[b"content-type"] = _TYPE
        if self.hosts is not None:
            self._wanted[b"host"] = _HOST
        if self.cors is not None:
            self._wanted[b"origin"] = _ORIGIN
        names, plain, https = self._names, self._plain, self._https
        self._finish_plain = lambda headers: _merged(headers, plain, names, False)
        self._finish_https = lambda headers: _merged(headers, https, names, False)
        self._route_limits: tuple[object, bool] | None = None  # (routes table, any own limit)
        self._own_limits: dict[RouteMatch, int | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if self.address is not None:
            self._forwarded(scope)
        length, chunked, content_type, host, origin = self._scan(scope)
        extra = self._https if scope["scheme"] == "https" else self._plain
        if self.hosts is not None and not self.hosts(host):
            response = problem_response(400, detail=_BAD_HOST)
            await response(scope, receive, self._with_headers(send, extra, False))
            return
        vary = False
        cors = self.cors
        if cors is not None:
            vary = cors.varies
            if origin is not None:
                if scope["method"] == "OPTIONS" and await self._preflight(
                    scope, receive, send, origin
                ):
                    return
                if cors.allows(origin):
                    extra = [*extra, cors.allow_origin(origin), *cors.response_headers]
        if extra or vary:
            if RESPONSE_HEADERS in scope and not vary and extra is self._plain:
                scope[RESPONSE_HEADERS] = self._finish_plain  # the outer layer's send adds them
            elif RESPONSE_HEADERS in scope and not vary and extra is self._https:
                scope[RESPONSE_HEADERS] = self._finish_https
            else:
                send = self._with_headers(send, extra, vary)
        if chunked or (length is not None and length != b"0"):
            limit = self._limit(scope)
            if length is not None and _announced(length) > limit:
                await problem_for_exception(body_too_large(limit))(scope, receive, send)
                return
            wants_json = content_type is not None and is_json(content_type)
            if chunked or wants_json:
                receive = LimitedBody(receive, limit, self._json if wants_json else None)
        await self.app(scope, receive, send)

    def _scan(
        self, scope: Scope
    ) -> tuple[bytes | None, bool, bytes | None, bytes | None, bytes | None]:
        """(Content-Length, chunked, Content-Type, Host, Origin): one pass over the headers."""
        length = content_type = host = origin = None
        chunked = False
        wanted = self._wanted
        for name, value in scope["headers"]:
            slot = wanted.get(name)
            if slot is None:
                continue
            if slot == _LENGTH:
                length = value
            elif slot == _CHUNKED:
                chunked = True
            elif slot == _TYPE:
                content_type = value
            elif slot == _HOST:
                host = value
            else:
                origin = value
        return length, chunked, content_type, host, origin

    def _forwarded(self, scope: Scope) -> None:
        client = scope.get("client")
        host, scheme = self.address.resolve(scope)  # type: ignore[union-attr]
        if host is not None and client and host != client[0]:
            # The port of a forwarded client is unknown; 0, as uvicorn's proxy layer does.
            scope["client"] = (host, 0)
        if scheme is not None:
            scope["scheme"] = scheme if scope["type"] == "http" else _WS_SCHEMES[scheme]

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.address is not None:
            self._forwarded(scope)
        if self.hosts is not None and not self.hosts(_header(scope, b"host")):
            await send({"type": "websocket.close", "code": 1008, "reason": "unknown host"})
            return
        await self.app(scope, receive, send)

    async def _preflight(self, scope: Scope, receive: Receive, send: Send, origin: bytes) -> bool:
        """Answer a CORS preflight; False when the OPTIONS request is not one."""
        cors = self.cors
        verdict = cors.preflight(scope, origin)  # type: ignore[union-attr]
        if verdict is None:
            return False
        allowed, why = verdict
        if allowed:
            headers = [*self._plain, cors.allow_origin(origin), *cors.preflight_headers]  # type: ignore[union-attr]
            if cors.varies:  # type: ignore[union-attr]
                headers.append((b"vary", b"Origin"))
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        else:
            response = problem_response(403, detail=why)
            await response(scope, receive, self._with_headers(send, self._plain, cors.varies))  # type: ignore[union-attr]
        return True

    def _limit(self, scope: Scope) -> int:
        """The body limit of the route ``scope`` goes to: its own max_body_size, or the default."""
        table = self.index.table(scope)
        if table is None:
            return self.max_body_size
        known = self._route_limits
        if known is None or known[0] is not table:
            known = self._route_limits = (
                table,
                any(_own_limit(m) is not None for m in table.matches),
            )
        if not known[1]:
            return self.max_body_size
        match = self.index.match(scope, table=table)
        if match is None:
            return self.max_body_size
        own = self._own_limits.get(match, _UNKNOWN)
        if own is _UNKNOWN:
            own = self._own_limits[match] = _own_limit(match)
        return self.max_body_size if own is None else own  # type: ignore[return-value]

    def _with_headers(self, send: Send, extra: Sequence[Header], vary: bool) -> Send:
        names = self._names

        def send_with_headers(message: Message) -> Any:
            if message["type"] == "http.response.start":
                message["headers"] = _merged(message.get("headers", ()), extra, names, vary)
            return send(message)

        return send_with_headers


_UNKNOWN: Any = object()
_CORS_NAMES = frozenset(
    {
        b"access-control-allow-origin",
        b"access-control-allow-credentials",
        b"access-control-expose-headers",
    }
)


def _security_headers(s: HttpSettings) -> tuple[list[Header], list[Header]]:
    """The headers of every response, and of HTTPS responses (the same plus HSTS)."""
    plain: list[Header] = []
    if s.content_type_options:
        plain.append((b"x-content-type-options", b"nosniff"))
    if s.referrer_policy:
        plain.append((b"referrer-policy", s.referrer_policy.encode("ascii")))
    if s.frame_options:
        plain.append((b"x-frame-options", s.frame_options.encode("ascii")))
    if s.content_security_policy:
        plain.append((b"content-security-policy", s.content_security_policy.encode("ascii")))
    if not s.hsts_max_age:
        return plain, plain
    hsts = f"max-age={s.hsts_max_age}" + (
        "; includeSubDomains" if s.hsts_include_subdomains else ""
    )
    return plain, [*plain, (b"strict-transport-security", hsts.encode("ascii"))]


def _merged(
    headers: Iterable[Header], extra: Sequence[Header], names: frozenset[bytes], vary: bool
) -> list[Header]:
    """The response's headers plus ``extra`` (those it did not set itself) and Vary: Origin.

    ASGI header names are lowercase, so they are compared as they are.
    """
    for name, _ in headers:
        if name in names or name == b"vary":
            break
    else:  # the usual case: nothing to reconcile
        return [*headers, *extra, (b"vary", b"Origin")] if vary else [*headers, *extra]
    own = {name for name, _ in headers}
    merged = [h for h in headers if not (vary and h[0] == b"vary")]
    merged += [h for h in extra if h[0] not in own]
    if vary:
        merged.append((b"vary", _vary_with_origin([v for n, v in headers if n == b"vary"])))
    return merged


def _vary_with_origin(values: list[bytes]) -> bytes:
    fields = [f.strip() for value in values for f in value.split(b",") if f.strip()]
    if any(f == b"*" or f.lower() == b"origin" for f in fields):
        return b", ".join(fields)
    return b", ".join([*fields, b"Origin"])


def _own_limit(match: RouteMatch) -> int | None:
    """The FastAPI ``max_body_size`` of a route (its include context's when included)."""
    owner = match.context if match.context is not None else match.route
    limit = getattr(owner, "max_body_size", None)
    return limit if isinstance(limit, int) else None


def _announced(length: bytes) -> int:
    try:
        return int(length)
    except ValueError:  # servers refuse a malformed Content-Length before the app sees it
        return 0


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None
