"""``Cache-Control: private, no-store`` on responses to authenticated requests.

A response made for one user must not be kept by a shared cache, nor by the
browser's disk cache on a shared machine. A route that opts into per-user
caching (the HTTP cache's ``per_user``) sets its own ``Cache-Control``, which is
left alone; so is any a route sets itself.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenfold._context import principal_var

__all__ = ["NoStoreMiddleware"]

_HEADER = b"cache-control"
_VALUE = b"private, no-store"


class NoStoreMiddleware:
    """Plain ASGI, inside the authentication slot: it sees the resolved principal."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def send_private(message: Message) -> object:
            if message["type"] == "http.response.start" and _authenticated(scope):
                headers = message.get("headers") or []
                if not any(name.lower() == _HEADER for name, _ in headers):
                    message["headers"] = [*headers, (_HEADER, _VALUE)]
            return send(message)

        await self.app(scope, receive, send_private)  # type: ignore[arg-type]


def _authenticated(scope: Scope) -> bool:
    if scope.get("user") is not None:
        return True
    acting = principal_var.get()
    return acting is not None and acting.principal is not None
