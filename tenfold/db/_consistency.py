"""Read-your-writes tokens on the wire, and the middleware that carries them.

A token is a PostgreSQL WAL position (LSN) written the way PostgreSQL prints
one: two hexadecimal halves, ``16/B374D848``. Inside the process it is an
``int`` in ``tenfold._context``; on the wire it is that string, in the
response header ``X-Consistency-Token`` and a cookie (names in settings).

Anything that does not parse is ignored: a token can only send the client's
own reads to the primary, never lend it data it should not see.
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenfold._context import _Floor, floor_var

__all__ = ["ConsistencyMiddleware", "format_token", "parse_token"]

_set_floor = floor_var.set
_reset_floor = floor_var.reset
_TOKEN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
_MAX_LSN = (1 << 64) - 1


def format_token(lsn: int) -> str:
    """``0x16B374D848`` -> ``"16/B374D848"`` (PostgreSQL's pg_lsn text form)."""
    if not 0 <= lsn <= _MAX_LSN:
        raise ValueError(f"not a WAL position: {lsn!r}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_token(raw: str | bytes | None) -> int | None:
    """The LSN in ``raw``, or ``None`` for anything that is not exactly ``HEX/HEX``."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _TOKEN.fullmatch(raw)
    if match is None:
        return None
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


class ConsistencyMiddleware:
    """Reads a client's token into the request's consistency floor; sends a raised one back.

    The incoming token comes from the header, else the cookie. When the
    request commits a write, the router raises the context's token; this
    middleware then adds the header and a ``Set-Cookie`` to the response.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header: str = "X-Consistency-Token",
        cookie: str | None = "tenfold_ct",
        cookie_max_age: int = 300,
    ) -> None:
        self.app = app
        self.header = header
        self._header_key = header.lower().encode("latin-1")
        self.cookie = cookie
        self.cookie_max_age = cookie_max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = self._incoming(scope)
        # The request's own floor: commits below raise it, and it is read back here.
        cell = _Floor()
        cell.lsn = incoming
        token = _set_floor(cell)
        secure = scope.get("scheme") in ("https", "wss")

        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start":
                lsn = cell.lsn
                if lsn is not None and (incoming is None or lsn > incoming):
                    self._emit(message, format_token(lsn), secure=secure)
            await send(message)

        try:
            await self.app(scope, receive, send_with_token)
        finally:
            _reset_floor(token)

    def _incoming(self, scope: Scope) -> int | None:
        cookie_header = None
        for key, value in scope.get("headers", ()):
            if key == self._header_key:
                token = parse_token(value)
                if token is not None:
                    return token
            elif key == b"cookie":
                cookie_header = value
        if self.cookie and cookie_header is not None:
            return parse_token(cookie_parser(cookie_header.decode("latin-1")).get(self.cookie))
        return None

    def _emit(self, message: Message, token: str, *, secure: bool) -> None:
        headers = MutableHeaders(scope=message)
        headers.append(self.header, token)
        if self.cookie:
            attrs = f"Max-Age={self.cookie_max_age}; Path=/; HttpOnly; SameSite=Lax"
            headers.append(
                "set-cookie", f"{self.cookie}={token}; {attrs}" + ("; Secure" if secure else "")
            )
