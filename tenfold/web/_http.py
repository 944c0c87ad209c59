"""``HttpMiddleware``: the kernel's HTTP layer, from ``TENFOLD_HTTP__*``.

It sits just inside the request-id layer (``Slot.HTTP``), before
authentication, rate limits and the application see the request, and makes
the scope tell the truth about who is asking: behind a trusted proxy the
client address (``scope["client"]``) and scheme (``scope["scheme"]``) are the
ones the proxy reported, so ``request.client``, rate limits keyed by address
and the access log all see the same client without each parsing forwarding
headers again.

One layer rather than several because each ASGI layer costs a call per
request (see docs/benchmarks.md); everything it needs from the settings is
computed when it is built.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tenfold._http_settings import HttpSettings
from tenfold.web._clientip import ClientAddress, parse_networks

__all__ = ["HttpMiddleware"]

_WS_SCHEMES = {"http": "ws", "https": "wss"}


class HttpMiddleware:
    """Resolves the client behind trusted proxies for HTTP and WebSocket scopes."""

    def __init__(self, app: ASGIApp, *, settings: HttpSettings | None = None) -> None:
        self.app = app
        self.settings = settings if settings is not None else HttpSettings()
        trusted = parse_networks(self.settings.trusted_proxies)
        #: None when no proxy is trusted: the peer is the client, nothing to rewrite.
        self.address = ClientAddress(trusted, self.settings.forwarded_header) if trusted else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.address is not None and scope["type"] != "lifespan":
            self._forwarded(scope)
        await self.app(scope, receive, send)

    def _forwarded(self, scope: Scope) -> None:
        client = scope.get("client")
        host, scheme = self.address.resolve(scope)  # type: ignore[union-attr]
        if host is not None and client and host != client[0]:
            # The port of a forwarded client is unknown; 0, as uvicorn's proxy layer does.
            scope["client"] = (host, 0)
        if scheme is not None:
            scope["scheme"] = scheme if scope["type"] == "http" else _WS_SCHEMES[scheme]
