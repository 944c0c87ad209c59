"""The auth section (``TENFOLD_AUTH__*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from tenfold._section import SettingsSection

__all__ = ["AuthSettings"]


class AuthSettings(SettingsSection):
    """Identity and access (``TENFOLD_AUTH__*``): passwords, tokens, sessions, keys, OAuth."""

    routes_prefix: str = Field(
        "/auth", description="Where the login, refresh and logout routes are served."
    )

    # -- passwords: fields for password hashing and login go here ---------------------------
    password_time_cost: int = Field(
        3, ge=1, le=20, description="argon2id passes (t). A change rehashes at the next login."
    )
    password_memory_cost: int = Field(
        65536,
        ge=8,
        le=4_194_304,
        description="argon2id memory in KiB (m). A change rehashes at the next login.",
    )
    password_parallelism: int = Field(
        4, ge=1, le=64, description="argon2id lanes (p). A change rehashes at the next login."
    )
    login_limit: str = Field(
        "5/minute",
        description="Login attempts per account (a rate limit, e.g. `5/minute`); over it, 429 "
        "whether or not the password was right. If the limiter cannot be asked, logins are "
        "refused (fail closed).",
    )
    login_limit_per_ip: str = Field(
        "20/minute",
        description="Login attempts per client address (behind TENFOLD_HTTP__TRUSTED_PROXIES).",
    )

    # -- access tokens: fields for JWTs and their keys go here ------------------------------
    issuer: str | None = Field(
        None, description="The `iss` of access tokens, checked on each (default: the app name)."
    )
    audience: str | None = Field(
        None, description="The `aud` of access tokens, checked on each (default: the app name)."
    )
    access_ttl: int = Field(
        900, ge=30, le=86_400, description="Seconds an access token is valid (15 minutes)."
    )
    leeway: int = Field(
        30, ge=0, le=300, description="Seconds of clock skew allowed on `exp`, `nbf` and `iat`."
    )
    algorithm: Literal["EdDSA", "ES256"] = Field(
        "EdDSA", description="The signing algorithm; tokens with any other are refused."
    )
    keys_file: Path | None = Field(
        None,
        description="A JSON file holding the signing keys (private JWKs with `kid`); "
        "`tenfold auth keys` creates and rotates it. Without it and without `keys`, each "
        "process makes a key of its own at startup: fine for one process, not for several.",
    )
    keys: SecretStr | None = Field(
        None, description="The same JSON as `keys_file`, inline (from a secret store)."
    )
    jwks_path: str = Field(
        "/.well-known/jwks.json", description="Where the public verification keys are served."
    )

    # -- refresh tokens: fields for refresh tokens go here -----------------------------------
    refresh_ttl: int = Field(
        30 * 86_400,
        ge=60,
        description="Seconds a refresh token (and its family) lives without being used.",
    )
    refresh_grace: float = Field(
        10.0,
        ge=0,
        le=300,
        description="Seconds after a refresh token was rotated during which it may be used "
        "again (a client retrying after a lost response, or two tabs refreshing at once): "
        "later, its reuse revokes the whole family.",
    )

    # -- browser sessions: fields for cookie sessions and CSRF go here -----------------------
    session_cookie: str = Field("tenfold_session", description="The session cookie's name.")
    session_ttl: int = Field(
        1800,
        ge=60,
        description="Seconds a browser session lasts without a request (it slides with use).",
    )
    session_same_site: Literal["lax", "strict"] = Field(
        "lax", description="The session cookie's SameSite attribute."
    )
    session_secure: Literal["auto", "always", "never"] = Field(
        "auto",
        description="The session cookie's Secure attribute: `auto` sets it when the request "
        "came over HTTPS (as resolved behind trusted proxies).",
    )
    csrf_header: str = Field(
        "X-CSRF-Token",
        description="The header a cookie-authenticated unsafe request must echo the CSRF token in.",
    )
    csrf_cookie: str = Field(
        "tenfold_csrf", description="The readable cookie carrying the CSRF token for scripts."
    )

    # -- API keys: fields for API keys go here -----------------------------------------------
    api_key_header: str = Field("X-API-Key", description="The header an API key is sent in.")
    api_key_prefix: str = Field(
        "tfk", pattern=r"^[a-z][a-z0-9]{1,15}$", description="The visible prefix of API keys."
    )

    # -- OAuth client: fields for connected provider accounts go here ------------------------
    token_encryption_keys: SecretStr | None = Field(
        None,
        description="Fernet keys (comma-separated, newest first) that encrypt provider tokens "
        "at rest; older keys still decrypt, so a key is rotated by putting a new one in front. "
        "Required when an OAuth provider is configured.",
    )
    oauth_refresh_margin: int = Field(
        60,
        ge=0,
        le=3600,
        description="Seconds before a provider access token expires that it is refreshed.",
    )
