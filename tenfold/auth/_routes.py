"""The auth routes: tokens for API clients, a cookie session for browsers, the JWKS.

Under ``TENFOLD_AUTH__ROUTES_PREFIX`` (``/auth``):

- ``POST /token``: ``{"username", "password"}`` -> an access token and a refresh token.
- ``POST /refresh``: ``{"refresh_token"}`` (or the session's refresh cookie, with the
  CSRF check) -> a new pair; the old refresh token is spent.
- ``POST /logout``: ``{"refresh_token"}`` (or the session cookies): its family is revoked.
- ``POST /logout-all``: every session of the caller is revoked.
- ``POST /session`` / ``DELETE /session``: log a browser in (HttpOnly cookies and a CSRF
  token) or out.
- ``GET /me``: who the caller is.

and ``GET TENFOLD_AUTH__JWKS_PATH``: the public keys that verify access tokens.

Login is limited per account and per client address before the password is checked,
and fails closed: if the limiter cannot be asked, nobody logs in (503).
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from tenfold._context import Principal, current_principal
from tenfold._errors import Unauthorized
from tenfold.auth._authenticate import Authenticator
from tenfold.auth._keys import KeySet
from tenfold.auth._refresh import RefreshTokens
from tenfold.auth._settings import AuthSettings
from tenfold.auth._tokens import AccessTokens
from tenfold.auth._users import Users
from tenfold.ratelimit import LimiterBackend, RateLimited, Rule

__all__ = ["AuthRoutes", "auth_routers"]

_REFRESH_COOKIE = "tenfold_refresh"


class Credentials(BaseModel):
    """A login. Unknown fields are refused (422), as on every write route."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str | None = Field(None, max_length=200)


class TokenPair(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class SessionStarted(BaseModel):
    """What a browser login answers; the tokens themselves are in HttpOnly cookies."""

    user_id: str
    roles: list[str]
    csrf_token: str
    expires_in: int


class Me(BaseModel):
    id: str
    kind: str
    roles: list[str]
    scopes: list[str]


@dataclass(slots=True)
class AuthRoutes:
    """What the routes work with (built by the auth extension)."""

    settings: AuthSettings
    tokens: AccessTokens
    keys: KeySet
    users: Users
    refresh: RefreshTokens
    authenticator: Authenticator
    limiter: LimiterBackend
    login_rules: tuple[Rule, Rule]

    async def login(self, request: Request, credentials: Credentials) -> Principal:
        """The principal of a right username and password; the limits are hit first."""
        account = unicodedata.normalize("NFKC", credentials.username).casefold()
        address = request.client.host if request.client is not None else "unknown"
        per_account, per_address = self.login_rules
        # One decision over both keys (a refusal by one spends nothing of the other), so
        # they share a hash tag: Redis decides them in one script, on one cluster slot.
        # The account is hashed: no attacker-chosen text (or braces) in a Redis key.
        hashed = hashlib.blake2b(account.encode(), digest_size=16).hexdigest()
        decisions = await self.limiter.hit_many(
            [
                (f"{{login}}:account:{hashed}", per_account),
                (f"{{login}}:address:{address}", per_address),
            ]
        )
        refused = [d for d in decisions if not d.allowed]
        if refused:
            worst = max(refused, key=lambda d: d.retry_after)
            raise RateLimited.from_decision(worst, "too many login attempts; wait and retry")
        user = await self.users.authenticate(credentials.username, credentials.password)
        if user is None:
            raise Unauthorized("the username or password is wrong")
        return user.principal()

    async def principal_of(self, user_id: str) -> Principal:
        user = await self.users.get(user_id)
        if user is None or user.disabled:
            raise Unauthorized("the session has ended; log in again")
        return user.principal()

    def pair(
        self, principal: Principal, refresh_token: str, refresh_expires_at: float
    ) -> TokenPair:
        now = self.tokens.clock()
        return TokenPair(
            access_token=self.tokens.issue(principal),
            expires_in=self.settings.access_ttl,
            refresh_token=refresh_token,
            refresh_expires_in=max(0, int(refresh_expires_at - now)),
        )

    # -- cookies -------------------------------------------------------------------------

    def set_session(
        self,
        response: Response,
        connection: HTTPConnection,
        principal: Principal,
        refresh_token: str,
        family_id: str,
        csrf: str,
    ) -> None:
        settings = self.settings
        secure = _secure(settings, connection)
        access = self.tokens.issue(principal, extra={"csrf": csrf, "sid": family_id})
        common: dict[str, Any] = {"secure": secure, "samesite": settings.session_same_site}
        response.set_cookie(
            settings.session_cookie,
            access,
            max_age=settings.access_ttl,
            httponly=True,
            path="/",
            **common,
        )
        response.set_cookie(
            _REFRESH_COOKIE,
            refresh_token,
            max_age=settings.session_ttl,
            httponly=True,
            path=settings.routes_prefix,
            **common,
        )
        # Readable by the page's scripts, which echo it in the CSRF header.
        response.set_cookie(
            settings.csrf_cookie, csrf, max_age=settings.session_ttl, path="/", **common
        )

    def clear_session(self, response: Response, connection: HTTPConnection) -> None:
        settings = self.settings
        common: dict[str, Any] = {
            "secure": _secure(settings, connection),
            "samesite": settings.session_same_site,
        }
        response.delete_cookie(settings.session_cookie, path="/", httponly=True, **common)
        response.delete_cookie(
            _REFRESH_COOKIE, path=settings.routes_prefix, httponly=True, **common
        )
        response.delete_cookie(settings.csrf_cookie, path="/", **common)


def _secure(settings: AuthSettings, connection: HTTPConnection) -> bool:
    if settings.session_secure == "always":
        return True
    if settings.session_secure == "never":
        return False
    return connection.url.scheme in ("https", "wss")


def auth_routers(routes: AuthRoutes) -> list[APIRouter]:
    """The routes of the module docstring, over ``routes``: the prefixed ones, and the JWKS."""
    settings = routes.settings
    router = APIRouter(prefix=settings.routes_prefix, tags=["auth"])
    public = APIRouter(tags=["auth"])

    @router.post("/token", response_model=TokenPair)
    async def token(request: Request, credentials: Credentials) -> TokenPair:
        """Log in: an access token and a refresh token."""
        principal = await routes.login(request, credentials)
        issued = await routes.refresh.issue(principal.id)
        return routes.pair(principal, issued.token, issued.expires_at)

    @router.post("/refresh", response_model=TokenPair)
    async def refresh(request: Request, response: Response, body: RefreshRequest) -> Any:
        """Spend a refresh token for a new pair. From a browser session (no body), the
        refresh cookie is spent and the session cookies renewed."""
        if body.refresh_token is not None:
            rotated = await routes.refresh.rotate(body.refresh_token)
            principal = await routes.principal_of(rotated.user_id)
            return routes.pair(principal, rotated.token, rotated.expires_at)
        cookie = request.cookies.get(_REFRESH_COOKIE)
        csrf = request.cookies.get(settings.csrf_cookie)
        if not cookie:
            raise Unauthorized("send a refresh_token, or log in")
        routes.authenticator.check_csrf(request, csrf)
        rotated = await routes.refresh.rotate(cookie)
        principal = await routes.principal_of(rotated.user_id)
        assert csrf is not None  # check_csrf refused a missing one
        routes.set_session(response, request, principal, rotated.token, rotated.family_id, csrf)
        response.status_code = 204
        return response

    @router.post("/logout", status_code=204)
    async def logout(request: Request, response: Response, body: RefreshRequest) -> Response:
        """End one session: the refresh token's family (or the browser session's)."""
        token = body.refresh_token
        if token is None:
            token = request.cookies.get(_REFRESH_COOKIE)
            if token is not None:
                routes.authenticator.check_csrf(request, request.cookies.get(settings.csrf_cookie))
        if token is not None:
            family = await routes.refresh.family_of(token)
            if family is not None:
                await routes.refresh.revoke_family(family, reason="logout")
        routes.clear_session(response, request)
        response.status_code = 204
        return response

    @router.post("/logout-all", status_code=204)
    async def logout_all(request: Request, response: Response) -> Response:
        """End every session of the caller, on every device."""
        principal = _required()
        await routes.refresh.revoke_user(principal.id, reason="logout_all")
        routes.clear_session(response, request)
        response.status_code = 204
        return response

    @router.post("/session", response_model=SessionStarted)
    async def session(
        request: Request, response: Response, credentials: Credentials
    ) -> SessionStarted:
        """Log a browser in: HttpOnly session cookies, and the CSRF token for scripts."""
        principal = await routes.login(request, credentials)
        issued = await routes.refresh.issue(principal.id)
        csrf = secrets.token_urlsafe(24)
        routes.set_session(response, request, principal, issued.token, issued.family_id, csrf)
        return SessionStarted(
            user_id=principal.id,
            roles=sorted(principal.roles),
            csrf_token=csrf,
            expires_in=settings.access_ttl,
        )

    @router.delete("/session", status_code=204)
    async def end_session(request: Request, response: Response) -> Response:
        """Log a browser out (its refresh family is revoked)."""
        return await logout(request, response, RefreshRequest())

    @router.get("/me", response_model=Me)
    async def me() -> Me:
        """Who the caller is."""
        principal = _required()
        return Me(
            id=principal.id,
            kind=principal.kind,
            roles=sorted(principal.roles),
            scopes=sorted(principal.scopes),
        )

    @public.get(settings.jwks_path, include_in_schema=False)
    async def jwks() -> Response:
        body = orjson.dumps(routes.keys.jwks())
        return Response(
            body,
            media_type="application/json",
            headers={"Cache-Control": "public, max-age=300"},
        )

    return [router, public]


def _required() -> Principal:
    principal = current_principal()
    if principal is None:
        raise Unauthorized("log in first")
    return principal
