"""Connected accounts: a user's account at an OAuth 2.0 provider (a fitness API, a calendar).

    client = OAuthClient(db, TokenCipher.from_settings(settings.auth), [strava])
    url = await client.start(user.id, "strava", "https://app.example/oauth/strava/callback")
    # ... redirect the browser to url; the provider redirects back with ?state=&code= ...
    account = await client.finish("strava", state=state, code=code)
    token = await client.access_token(user.id, "strava")   # refreshed when about to expire

The authorization code flow runs with a one-time ``state`` (stored hashed, 10
minutes by default) and PKCE S256. Tokens are kept encrypted at rest
(``TokenCipher``, Fernet keys from ``TENFOLD_AUTH__TOKEN_ENCRYPTION_KEYS``).

A token about to expire is refreshed by one caller at a time per account,
across processes: the refresher locks the account's row (``SELECT ... FOR
UPDATE`` on PostgreSQL; on SQLite every write transaction is ``BEGIN
IMMEDIATE``) and reads it again once it has the lock, so callers that waited
find the new token instead of refreshing again (providers that rotate refresh
tokens would otherwise revoke the account). Inside one process, callers also
queue on a lock of their own first, so a burst costs one database connection,
not one per caller.

The row lock is held across the call to the provider's token endpoint. That
call is bounded by ``refresh_timeout`` (10 s): keep it below
``TENFOLD_DB__STATEMENT_TIMEOUT_MS`` (15 s), which bounds how long the callers
queued on the lock wait, and on SQLite below the write lock's wait
(``TENFOLD_DB__POOL_TIMEOUT``), since every writer of the file waits meanwhile.

Errors (a client never sees the provider's or the HTTP library's text):

    OAuthStateError (BadRequest)          the callback's state is unknown, used, expired or
                                          for another provider
    OAuthCodeRejected (BadRequest)        the provider refused the authorization code
    OAuthAccountNotFound (NotFound)       the user has not connected that provider
    OAuthAccountRevoked (Conflict)        the provider refused the refresh token: reconnect
    OAuthProviderUnavailable (DependencyUnavailable)
                                          the provider could not be reached or answered
                                          something unusable
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tenfold._errors import NotFound
from tenfold.auth._cipher import TokenCipher
from tenfold.auth._oauth_model import (
    ConnectedAccount,
    OAuthAccountNotFound,
    OAuthAccountRevoked,
    OAuthCodeRejected,
    OAuthProvider,
    OAuthProviderUnavailable,
    OAuthStateError,
    oauth_accounts,
    oauth_states,
)
from tenfold.db import Database

# Authlib prefers the httpx2 package and, without it, warns on every import that its
# httpx fallback is deprecated. httpx is what tenfold uses; the warning tells an app
# builder nothing they can act on.
with warnings.catch_warnings():
    import authlib.deprecate  # installs an "always" filter of its own: ours must come later

    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

__all__ = ["OAuthClient"]

#: A token endpoint call (and a userinfo call) gives up after this many seconds.
REFRESH_TIMEOUT = 10.0
#: Seconds between ``start`` and the callback that ``finish`` accepts.
STATE_TTL = 600.0


class _GrantRefused(Exception):
    """The token endpoint answered ``invalid_grant``."""


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class _Through(httpx.AsyncBaseTransport):
    """Sends each request through ``client`` (its pool, limits and hooks); closing does nothing.

    Authlib's client is an ``httpx.AsyncClient`` of its own; this lets it share
    the one the application passed (or the one ``OAuthClient`` owns).
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.client.send(request)


class _Queue:
    """One asyncio lock per account while anyone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            _, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


# -- the client ------------------------------------------------------------------------------


class OAuthClient:
    """Connects users' accounts at OAuth 2.0 providers and hands out their access tokens.

    ``providers`` is a mapping by name or an iterable of ``OAuthProvider``.
    ``http`` is the ``httpx.AsyncClient`` the provider calls go through
    (without one, the client makes its own; ``aclose()`` closes it).
    ``refresh_margin`` is how many seconds before expiry a token is refreshed
    (``TENFOLD_AUTH__OAUTH_REFRESH_MARGIN``); ``refresh_timeout`` bounds each
    call to a provider (see the module docstring for why it matters);
    ``state_ttl`` is how long a started flow may take; ``clock`` gives epoch
    seconds.
    """

    def __init__(
        self,
        db: Database,
        cipher: TokenCipher,
        providers: Mapping[str, OAuthProvider] | Iterable[OAuthProvider],
        *,
        http: httpx.AsyncClient | None = None,
        refresh_margin: float = 60,
        refresh_timeout: float = REFRESH_TIMEOUT,
        state_ttl: float = STATE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        listed = providers.values() if isinstance(providers, Mapping) else providers
        self.providers = {p.name: p for p in listed}
        self.db = db
        self.cipher = cipher
        self.refresh_margin = refresh_margin
        self.refresh_timeout = refresh_timeout
        self.state_ttl = state_ttl
        self.clock = clock
        self._owned = httpx.AsyncClient(timeout=refresh_timeout) if http is None else None
        self._transport = _Through(http or self._owned)  # type: ignore[arg-type]
        self._queue = _Queue()

    def __repr__(self) -> str:
        return f"<OAuthClient providers={sorted(self.providers)}>"

    async def aclose(self) -> None:
        """Close the HTTP client this object made (not one it was given)."""
        if self._owned is not None:
            await self._owned.aclose()

    def provider(self, name: str) -> OAuthProvider:
        """The provider registered as ``name``; ``NotFound`` if there is none."""
        try:
            return self.providers[name]
        except KeyError:
            raise NotFound(f"no OAuth provider named {name!r}") from None

    # -- the authorization code flow ------------------------------------------------------------

    async def start(self, user_id: str, provider: str, redirect_uri: str) -> str:
        """The provider's authorization URL to send ``user_id``'s browser to.

        It carries a new one-time ``state`` and a PKCE S256 ``code_challenge``;
        both are remembered (the verifier encrypted) until ``finish`` or for
        ``state_ttl`` seconds. Expired flows are swept here.
        """
        prov = self.provider(provider)
        verifier = generate_token(64)
        async with self._oauth(prov) as oauth:
            url, state = oauth.create_authorization_url(
                prov.authorize_url,
                state=generate_token(43),
                code_verifier=verifier,
                redirect_uri=redirect_uri,
                scope=list(prov.scopes) or None,
                **prov.authorize_params,
            )
        now = self.clock()
        async with self.db.session() as session:
            await session.execute(sa.delete(oauth_states).where(oauth_states.c.expires_at < now))
            await session.execute(
                sa.insert(oauth_states).values(
                    state_hash=_state_hash(state),
                    provider=prov.name,
                    user_id=user_id,
                    code_verifier=self.cipher.encrypt(verifier),
                    redirect_uri=redirect_uri,
                    created_at=now,
                    expires_at=now + self.state_ttl,
                )
            )
        return str(url)

    async def finish(
        self, provider: str, *, state: str, code: str, user_id: str | None = None
    ) -> ConnectedAccount:
        """Complete the flow ``start`` began: exchange ``code`` and store the tokens.

        Pass the signed-in user as ``user_id`` whenever the callback has one:
        otherwise someone could start a flow for their own user, send the
        authorization URL to a victim, and have the victim's provider account
        connected to theirs. The state is used up first, whatever happens next
        (a second callback with it is refused). An unknown, used, expired,
        other provider's or other user's state raises ``OAuthStateError`` and
        stores nothing; a code the provider refuses raises
        ``OAuthCodeRejected``. Connecting again replaces the account's tokens.
        """
        prov = self.provider(provider)
        user_id, verifier, redirect_uri = await self._consume_state(prov.name, state, user_id)
        async with self._oauth(prov) as oauth:
            try:
                token = await self._token_call(
                    prov,
                    oauth.fetch_token(
                        prov.token_url,
                        grant_type="authorization_code",
                        code=code,
                        redirect_uri=redirect_uri,
                        code_verifier=verifier,
                    ),
                )
            except _GrantRefused:
                raise OAuthCodeRejected("the provider refused the authorization code") from None
            userinfo = await self._userinfo(prov, oauth) if prov.userinfo_url else None
        subject = prov.subject(token, userinfo)
        return await self._store(prov, user_id, token, subject)

    async def _consume_state(
        self, provider: str, state: str, user_id: str | None
    ) -> tuple[str, str, str]:
        async with self.db.session() as session:
            row = (
                await session.execute(
                    sa.delete(oauth_states)
                    .where(oauth_states.c.state_hash == _state_hash(state))
                    .returning(*oauth_states.c)
                )
            ).one_or_none()
        if row is None:
            raise OAuthStateError("unknown or already used OAuth state; start again")
        if row.expires_at <= self.clock():
            raise OAuthStateError("the OAuth state has expired; start again")
        if row.provider != provider:
            raise OAuthStateError("the OAuth state was issued for another provider")
        if user_id is not None and row.user_id != user_id:
            raise OAuthStateError("the OAuth state was issued to another user")
        return row.user_id, self.cipher.decrypt(row.code_verifier), row.redirect_uri

    async def _userinfo(self, prov: OAuthProvider, oauth: AsyncOAuth2Client) -> dict[str, Any]:
        # auth= signs with the token just fetched and skips Authlib's own refresh check,
        # which would use the wall clock rather than ours.
        call = oauth.get(prov.userinfo_url, auth=oauth.token_auth)
        try:
            async with asyncio.timeout(self.refresh_timeout):
                response = await call
            response.raise_for_status()
            info = response.json()
        except (httpx.HTTPError, ValueError, TimeoutError) as exc:
            raise OAuthProviderUnavailable(prov.name, reason=f"userinfo: {exc!r}") from exc
        if not isinstance(info, dict):
            raise OAuthProviderUnavailable(prov.name, reason="userinfo is not a JSON object")
        return info

    async def _store(
        self, prov: OAuthProvider, user_id: str, token: Mapping[str, Any], subject: str | None
    ) -> ConnectedAccount:
        now = self.clock()
        values = self._token_values(prov, token, now)
        insert = (
            _dialect_insert(self.db)(oauth_accounts)
            .values(user_id=user_id, provider=prov.name, subject=subject, created_at=now, **values)
            .on_conflict_do_update(
                index_elements=["user_id", "provider"],
                set_={"subject": subject, "revoked_at": None, **values},
            )
        )
        async with self.db.session() as session:
            await session.execute(insert)
        return ConnectedAccount(user_id, prov.name, subject, values["expires_at"], values["scope"])

    # -- tokens --------------------------------------------------------------------------------

    async def access_token(self, user_id: str, provider: str) -> str:
        """A valid access token for ``user_id``'s account at ``provider``.

        A token that expires within ``refresh_margin`` seconds is refreshed
        first, once for all concurrent callers in every process (see the
        module docstring). Raises ``OAuthAccountNotFound``,
        ``OAuthAccountRevoked`` (the provider refused the refresh token; the
        account is marked for reconnection) or ``OAuthProviderUnavailable``.
        """
        prov = self.provider(provider)
        row = await self._read(user_id, prov.name)
        if row is not None and self._usable(row):
            return self.cipher.decrypt(row.access_token)
        async with self._queue.hold((user_id, prov.name)):
            return await self._refresh(prov, user_id)

    async def _read(self, user_id: str, provider: str) -> Any:
        # A write session reads the primary: a replica may still hold the token a refresh
        # replaced (some providers revoke it then). On SQLite, where the primary is the only
        # server, a read session avoids taking the write lock.
        async with self.db.session(readonly=self.db.is_sqlite) as session:
            return (await session.execute(_select(user_id, provider))).one_or_none()

    def _usable(self, row: Any) -> bool:
        if row.revoked_at is not None:
            return False
        return row.expires_at is None or row.expires_at - self.refresh_margin > self.clock()

    async def _refresh(self, prov: OAuthProvider, user_id: str) -> str:
        async with self.db.session() as session:
            locked = _select(user_id, prov.name).with_for_update()
            row = (await session.execute(locked)).one_or_none()
            if row is None:
                raise OAuthAccountNotFound(f"no {prov.name} account is connected")
            if row.revoked_at is not None:
                raise OAuthAccountRevoked(f"the {prov.name} account must be connected again")
            if self._usable(row):  # someone refreshed it while we waited for the lock
                return self.cipher.decrypt(row.access_token)
            if row.refresh_token is None:
                if row.expires_at > self.clock():
                    return self.cipher.decrypt(row.access_token)
                raise OAuthAccountRevoked(
                    f"the {prov.name} token expired and cannot be refreshed; connect again"
                )
            where = (oauth_accounts.c.user_id == user_id) & (oauth_accounts.c.provider == prov.name)
            try:
                token = await self._refresh_call(prov, self.cipher.decrypt(row.refresh_token))
            except _GrantRefused:
                await session.execute(
                    sa.update(oauth_accounts).where(where).values(revoked_at=self.clock())
                )
            else:
                values = self._token_values(prov, token, self.clock(), previous=row)
                await session.execute(sa.update(oauth_accounts).where(where).values(**values))
                return str(token["access_token"])
        raise OAuthAccountRevoked(f"the {prov.name} account must be connected again")

    async def _refresh_call(self, prov: OAuthProvider, refresh_token: str) -> Mapping[str, Any]:
        async with self._oauth(prov) as oauth:
            return await self._token_call(
                prov, oauth.refresh_token(prov.token_url, refresh_token=refresh_token)
            )

    async def _token_call(self, prov: OAuthProvider, call: Any) -> Mapping[str, Any]:
        """Await Authlib's token request within ``refresh_timeout``, its errors mapped."""
        try:
            async with asyncio.timeout(self.refresh_timeout):
                token = await call
        except OAuthError as exc:
            if exc.error == "invalid_grant":
                raise _GrantRefused from exc
            raise OAuthProviderUnavailable(prov.name, reason=f"refused: {exc.error}") from exc
        except (httpx.HTTPError, ValueError, TimeoutError) as exc:
            raise OAuthProviderUnavailable(prov.name, reason=repr(exc)) from exc
        if not token.get("access_token"):
            raise OAuthProviderUnavailable(prov.name, reason="no access_token in the answer")
        return token  # type: ignore[no-any-return]

    def _token_values(
        self, prov: OAuthProvider, token: Mapping[str, Any], now: float, previous: Any = None
    ) -> dict[str, Any]:
        # expires_at from our clock, not Authlib's (wall clock) one, so both agree.
        expires_in = token.get("expires_in")
        expires_at = now + float(expires_in) if expires_in is not None else None
        refresh = token.get("refresh_token")
        scope = token.get("scope")
        if scope is None:
            scope = previous.scope if previous is not None else " ".join(prov.scopes) or None
        return {
            "access_token": self.cipher.encrypt(str(token["access_token"])),
            # A refresh answer without a refresh token keeps the old one (RFC 6749 §6).
            "refresh_token": self.cipher.encrypt(str(refresh))
            if refresh
            else (previous.refresh_token if previous is not None else None),
            "expires_at": expires_at,
            "scope": scope,
            "updated_at": now,
        }

    # -- accounts ------------------------------------------------------------------------------

    async def account(self, user_id: str, provider: str) -> ConnectedAccount | None:
        """``user_id``'s account at ``provider``, or None when it is not connected."""
        row = await self._read(user_id, self.provider(provider).name)
        if row is None:
            return None
        return ConnectedAccount(
            row.user_id,
            row.provider,
            row.subject,
            row.expires_at,
            row.scope,
            needs_reconnect=row.revoked_at is not None,
        )

    async def disconnect(self, user_id: str, provider: str) -> bool:
        """Forget ``user_id``'s account at ``provider`` and its tokens; False if there was none.

        The grant is not revoked at the provider; do that first where it offers a way.
        """
        where = (oauth_accounts.c.user_id == user_id) & (oauth_accounts.c.provider == provider)
        async with self.db.session() as session:
            result = await session.execute(sa.delete(oauth_accounts).where(where))
        return bool(result.rowcount)

    def _oauth(self, prov: OAuthProvider) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=prov.client_id,
            client_secret=prov.secret,
            token_endpoint_auth_method=prov.token_endpoint_auth_method,
            code_challenge_method="S256",
            transport=self._transport,
            timeout=self.refresh_timeout,
            trust_env=False,  # the transport is the configured client, proxies included
        )


def _select(user_id: str, provider: str) -> sa.Select[Any]:
    return sa.select(oauth_accounts).where(
        (oauth_accounts.c.user_id == user_id) & (oauth_accounts.c.provider == provider)
    )


def _dialect_insert(db: Database) -> Any:
    # Both dialects spell an upsert the same way (ON CONFLICT ... DO UPDATE).
    return sqlite.insert if db.is_sqlite else postgresql.insert
