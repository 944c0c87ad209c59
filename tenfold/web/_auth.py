"""The authentication slot: resolve who is asking before anything decides on it.

``create_app(authenticate=fn)`` installs ``AuthenticationMiddleware(resolve=fn)``
in ``Slot.AUTHENTICATION``, outside the rate limiter and the HTTP cache, so a
``by_user`` limit counts the user and a ``per_user`` cached response is keyed
on them. ``fn`` gets the Starlette ``HTTPConnection`` (HTTP and WebSocket
alike) and returns ``None`` (anonymous), a ``tenfold.Principal``, or a plain
string (the principal's id); it may be ``async``. What it raises becomes the
response (a ``tenfold.web`` problem), so an invalid credential can be a 401.

The principal is the current one for the rest of the request
(``tenfold.current_principal()``) and ``scope["user"]`` (``request.user``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from tenfold._context import Principal, bind_principal, principal_var

__all__ = ["Authenticate", "AuthenticationMiddleware"]

#: A resolver: connection -> None, a Principal or a principal id; sync or async.
Authenticate = Callable[
    [HTTPConnection], "Principal | str | Awaitable[Principal | str | None] | None"
]


class AuthenticationMiddleware:
    """Plain ASGI: sets the principal ``resolve`` finds for each HTTP request and WebSocket."""

    def __init__(self, app: ASGIApp, *, resolve: Authenticate) -> None:
        self.app = app
        self.resolve = resolve
        self._is_async = inspect.iscoroutinefunction(resolve) or inspect.iscoroutinefunction(
            getattr(resolve, "__call__", None)  # noqa: B004 - an object with async __call__
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        found: Any = self.resolve(HTTPConnection(scope))
        if self._is_async or inspect.isawaitable(found):
            found = await found
        principal = Principal.of(found)
        if principal is None:
            await self.app(scope, receive, send)
            return
        scope["user"] = principal
        acting = principal_var.get()
        if acting is not None:  # the request-context layer's cell: it resets it
            acting.principal = principal
            await self.app(scope, receive, send)
            return
        token = bind_principal(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            principal_var.reset(token)
