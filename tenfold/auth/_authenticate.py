"""The authenticator in the kernel's slot: bearer tokens, API keys and browser sessions.

Each request (and WebSocket) is resolved once, in this order:

1. ``Authorization: Bearer <credential>``: an access token, or an API key when the
   credential starts with the API-key prefix. A credential that does not verify is a
   401 (the client sent one; silently treating it as anonymous would hide the error).
2. The API-key header (``TENFOLD_AUTH__API_KEY_HEADER``): an API key, 401 if it is bad.
3. The session cookie: the same access token, carried by the browser. A bad or expired
   cookie is anonymous (the page refreshes its session, a public page still renders);
   an unsafe method authenticated by the cookie must pass the CSRF check: an
   ``Origin`` (or ``Referer``) of this site or an allowed CORS origin, and the
   session's CSRF token echoed in ``TENFOLD_AUTH__CSRF_HEADER``. Failing it is a 403.

Nothing else authenticates: no credential is anonymous (``None``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from tenfold._context import Principal
from tenfold._errors import Forbidden, Unauthorized
from tenfold.auth._tokens import AccessTokens, InvalidToken

__all__ = ["SAFE_METHODS", "Authenticator", "CsrfFailed", "origin_allowed", "request_origin"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class CsrfFailed(Forbidden):
    """A cookie-authenticated unsafe request failed the CSRF check (403)."""


def request_origin(connection: HTTPConnection) -> str:
    """This request's own origin, ``scheme://host[:port]``, as the client addressed it."""
    scheme = connection.url.scheme
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    host = connection.headers.get("host", "")
    return _normalise(f"{scheme}://{host}")


def origin_allowed(connection: HTTPConnection, allowed: Iterable[str]) -> bool:
    """Whether the request's ``Origin`` (or, without one, ``Referer``) is this site or one
    of ``allowed``. Neither header: refused (every browser sends ``Origin`` on an unsafe
    request; a script without one must use a bearer token)."""
    origin = connection.headers.get("origin")
    if origin is None:
        referer = connection.headers.get("referer")
        if not referer:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin == "null":
        return False
    claimed = _normalise(origin)
    return claimed == request_origin(connection) or claimed in {_normalise(o) for o in allowed}


def _normalise(origin: str) -> str:
    parts = urlsplit(origin.strip().lower())
    if not parts.scheme or not parts.hostname:
        return ""
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{parts.hostname}"
    return f"{parts.scheme}://{parts.hostname}:{port}"


class Authenticator:
    """``resolve(connection)`` for the kernel's authentication slot (see the module)."""

    def __init__(
        self,
        tokens: AccessTokens,
        *,
        api_keys: Any = None,
        api_key_prefix: str = "tfk",
        api_key_header: str = "X-API-Key",
        session_cookie: str = "tenfold_session",
        csrf_header: str = "X-CSRF-Token",
        allowed_origins: Iterable[str] = (),
    ) -> None:
        self.tokens = tokens
        self.api_keys = api_keys
        self._key_start = f"{api_key_prefix}_"
        self._key_header = api_key_header.lower()
        self.session_cookie = session_cookie
        self._csrf_header = csrf_header.lower()
        self.allowed_origins = tuple(allowed_origins)

    async def __call__(self, connection: HTTPConnection) -> Principal | None:
        headers = connection.headers
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, credential = authorization.partition(" ")
            credential = credential.strip()
            if scheme.lower() != "bearer" or not credential:
                raise Unauthorized(
                    "send credentials as 'Authorization: Bearer <token>'",
                    challenge='Bearer error="invalid_request"',
                )
            if self.api_keys is not None and credential.startswith(self._key_start):
                return await self.api_keys.verify(credential)
            return self.tokens.verify(credential)
        key = headers.get(self._key_header)
        if key is not None and self.api_keys is not None:
            return await self.api_keys.verify(key)
        cookie = connection.cookies.get(self.session_cookie)
        if cookie:
            return self._session(connection, cookie)
        return None

    async def verify_token(self, token: str) -> Principal | None:
        """The principal of a bearer credential (an access token or an API key) that came
        some other way than a header, such as a realtime ``connect`` frame; None when it
        does not verify."""
        try:
            if self.api_keys is not None and token.startswith(self._key_start):
                return await self.api_keys.verify(token)
            return self.tokens.verify(token)
        except Unauthorized:
            return None

    def _session(self, connection: HTTPConnection, cookie: str) -> Principal | None:
        try:
            principal = self.tokens.verify(cookie)
        except InvalidToken:
            return None  # expired or foreign: anonymous; the page refreshes its session
        if connection.scope["type"] == "http" and connection.scope["method"] not in SAFE_METHODS:
            self.check_csrf(connection, principal.claims.get("csrf"))
        return principal

    def check_csrf(self, connection: HTTPConnection, expected: Any) -> None:
        """Refuse (403) unless the origin is allowed and the CSRF header matches ``expected``."""
        if not origin_allowed(connection, self.allowed_origins):
            raise CsrfFailed("the request's Origin is not allowed to use this session")
        sent = connection.headers.get(self._csrf_header, "")
        if not isinstance(expected, str) or not expected or not sent:
            raise CsrfFailed("the CSRF token is missing")
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise CsrfFailed("the CSRF token does not match the session")
