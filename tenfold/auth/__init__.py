"""Identity and access: users, tokens, browser sessions, roles, API keys, OAuth accounts.

    app = create_app(extensions=[AuthExtension(roles={"organiser": ["matches:*"]})])

``AuthExtension`` fills the kernel's authentication slot, so every request and
WebSocket has its principal before the rate limiter, the HTTP cache and the routes
decide, and serves ``/auth/token``, ``/auth/refresh``, ``/auth/session`` and the
JWKS. Its parts, each usable alone:

    Passwords        argon2id hashing, off the event loop, rehash when parameters change
    Users            accounts with normalised usernames; constant-work authenticate
    KeySet           the signing keys (EdDSA or ES256) with kid rotation; the JWKS
    AccessTokens     short-lived JWTs: issue, and verify with pinned algorithm and claims
    RefreshTokens    opaque rotating refresh tokens in families, with reuse detection
    Authenticator    bearer token, API key or session cookie (with its CSRF check)
    Roles, Grants    role -> permissions; roles granted on one resource
    Access           may this principal do this (here)? ``require``, ``require_on``,
                     ``owned`` (a foreign object is a 404) and ``visible``
    ApiKeys          prefixed, hashed, scoped, rotating keys for service calls
    OAuthClient      connect a user's account at a provider (PKCE), its tokens
                     encrypted at rest (TokenCipher), refreshed once across instances

``metadata`` holds the tables (add it to your migrations on PostgreSQL). See
docs/security.md.
"""

from __future__ import annotations

from tenfold.auth._apikeys import ApiKey, ApiKeys, InvalidApiKey, NewKey
from tenfold.auth._authenticate import Authenticator, CsrfFailed
from tenfold.auth._cipher import TokenCipher
from tenfold.auth._extension import AuthExtension
from tenfold.auth._keys import KeySet, SigningKey
from tenfold.auth._oauth import OAuthClient
from tenfold.auth._oauth_model import (
    ConnectedAccount,
    OAuthAccountNotFound,
    OAuthAccountRevoked,
    OAuthCodeRejected,
    OAuthProvider,
    OAuthProviderUnavailable,
    OAuthStateError,
)
from tenfold.auth._passwords import Passwords
from tenfold.auth._problems import PROBLEMS
from tenfold.auth._rbac import Access, Grants, Roles, owned, require, require_on, visible
from tenfold.auth._refresh import (
    InvalidRefreshToken,
    Issued,
    RefreshTokenReused,
    RefreshTokens,
    Rotated,
)
from tenfold.auth._settings import AuthSettings
from tenfold.auth._tables import create_tables, metadata
from tenfold.auth._tokens import AccessTokens, InvalidToken
from tenfold.auth._users import User, Users

__all__ = [
    "PROBLEMS",
    "Access",
    "AccessTokens",
    "ApiKey",
    "ApiKeys",
    "AuthExtension",
    "AuthSettings",
    "Authenticator",
    "ConnectedAccount",
    "CsrfFailed",
    "Grants",
    "InvalidApiKey",
    "InvalidRefreshToken",
    "InvalidToken",
    "Issued",
    "KeySet",
    "NewKey",
    "OAuthAccountNotFound",
    "OAuthAccountRevoked",
    "OAuthClient",
    "OAuthCodeRejected",
    "OAuthProvider",
    "OAuthProviderUnavailable",
    "OAuthStateError",
    "Passwords",
    "RefreshTokenReused",
    "RefreshTokens",
    "Roles",
    "Rotated",
    "SigningKey",
    "TokenCipher",
    "User",
    "Users",
    "create_tables",
    "metadata",
    "owned",
    "require",
    "require_on",
    "visible",
]
