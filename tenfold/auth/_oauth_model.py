"""The values, tables and errors of connected accounts (see ``tenfold.auth._oauth``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from tenfold._errors import BadRequest, Conflict, DependencyUnavailable, NotFound
from tenfold.auth._tables import metadata

__all__ = [
    "ConnectedAccount",
    "OAuthAccountNotFound",
    "OAuthAccountRevoked",
    "OAuthCodeRejected",
    "OAuthProvider",
    "OAuthProviderUnavailable",
    "OAuthStateError",
    "oauth_accounts",
    "oauth_states",
]

oauth_states = sa.Table(
    "tenfold_auth_oauth_states",
    metadata,
    # SHA-256 of the state: a leaked table does not hand out live states.
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("code_verifier", sa.Text, nullable=False),  # encrypted
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

oauth_accounts = sa.Table(
    "tenfold_auth_oauth_accounts",
    metadata,
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("provider", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(255)),  # the account's id at the provider
    sa.Column("access_token", sa.Text, nullable=False),  # encrypted
    sa.Column("refresh_token", sa.Text),  # encrypted
    sa.Column("expires_at", sa.Float),  # None: the provider gave no lifetime
    sa.Column("scope", sa.Text),
    sa.Column("revoked_at", sa.Float),  # set when the provider refused the refresh token
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_tenfold_auth_oauth_accounts_subject", "provider", "subject"),
)


# -- errors ----------------------------------------------------------------------------------


class OAuthStateError(BadRequest):
    """The callback's ``state`` is unknown, already used, expired or for another provider."""


class OAuthCodeRejected(BadRequest):
    """The provider refused the authorization code (expired, used, or not for this client)."""


class OAuthAccountNotFound(NotFound):
    """The user has no connected account at this provider."""


class OAuthAccountRevoked(Conflict):
    """The provider no longer accepts the account's grant: the user must connect it again."""


class OAuthProviderUnavailable(DependencyUnavailable):
    """The provider could not be reached in time, failed, or answered something unusable.

    The cause (httpx's or Authlib's error) is ``__cause__`` and, summarised, in
    ``context["reason"]`` for logs; neither is meant for clients.
    """

    def __init__(self, provider: str, *, reason: str) -> None:
        super().__init__(f"the OAuth provider {provider!r} is unavailable", dependency=provider)
        self.context["reason"] = reason


# -- values ----------------------------------------------------------------------------------


def _default_subject(token: Mapping[str, Any], userinfo: Mapping[str, Any] | None) -> str | None:
    for source in (userinfo or {}, token):
        for key in ("sub", "id", "user_id"):
            if source.get(key) not in (None, ""):
                return str(source[key])
    return None


@dataclass(frozen=True, slots=True)
class OAuthProvider:
    """One provider's registration: where to send the user, where to get tokens.

    ``subject(token, userinfo)`` returns the account's id at the provider;
    ``userinfo`` is the JSON of ``userinfo_url`` (fetched with the new access
    token) or None without one. By default it is the first of ``sub``, ``id``,
    ``user_id`` found in the userinfo, then in the token response.
    ``token_endpoint_auth_method`` is Authlib's (``client_secret_basic`` when
    there is a secret, ``none`` for public clients, ``client_secret_post``).
    ``authorize_params`` are added to the authorization URL (``access_type``,
    ``prompt``...).
    """

    name: str
    client_id: str
    client_secret: SecretStr | str | None
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...] = ()
    userinfo_url: str | None = None
    subject: Callable[[Mapping[str, Any], Mapping[str, Any] | None], str | None] = field(
        default=_default_subject, repr=False
    )
    token_endpoint_auth_method: str | None = None
    authorize_params: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"OAuthProvider({self.name!r}, client_id={self.client_id!r})"

    @property
    def secret(self) -> str | None:
        if isinstance(self.client_secret, SecretStr):
            return self.client_secret.get_secret_value()
        return self.client_secret


@dataclass(frozen=True, slots=True)
class ConnectedAccount:
    """A user's account at a provider (no tokens: ask ``access_token`` for one)."""

    user_id: str
    provider: str
    subject: str | None
    expires_at: float | None
    scope: str | None
    needs_reconnect: bool = False
