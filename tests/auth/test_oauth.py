"""OAuthClient against a fake provider on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.fernet import Fernet
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tenfold import DatabaseSettings
from tenfold._errors import ConfigurationError, DependencyUnavailable, NotFound
from tenfold.auth import (
    AuthSettings,
    OAuthAccountNotFound,
    OAuthAccountRevoked,
    OAuthClient,
    OAuthCodeRejected,
    OAuthProvider,
    OAuthProviderUnavailable,
    OAuthStateError,
    TokenCipher,
)
from tenfold.auth._oauth_model import oauth_accounts, oauth_states
from tenfold.db import Database
from tenfold.testing import ManualClock, serve_asgi

CLIENT_ID = "tenfold-app"
CLIENT_SECRET = "s3cret-of-the-app"
REDIRECT = "https://app.example/oauth/fake/callback"
SUBJECT = "athlete-4242"
EXPIRES_IN = 3600


class FakeProvider:
    """An authorization server: /authorize approves at once, /token checks PKCE and counts."""

    def __init__(self) -> None:
        self.codes: dict[str, dict[str, str]] = {}
        self.refresh_tokens: set[str] = set()
        self.access_tokens: set[str] = set()
        self.exchanges = 0
        self.refreshes = 0
        self.pkce_refused = 0
        self.status_override: int | None = None
        self.hold_refresh: asyncio.Event | None = None
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
            ]
        )

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if (
            q.get("response_type") != "code"
            or q.get("client_id") != CLIENT_ID
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = f"code-{next(self._ids)}"
        self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"]}
        return RedirectResponse(f"{q['redirect_uri']}?code={code}&state={q['state']}", 302)

    async def token(self, request: Request) -> Response:
        if self.status_override is not None:
            return Response("upstream trouble: stack trace here", self.status_override)
        if request.headers.get("authorization") != _basic(CLIENT_ID, CLIENT_SECRET):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") == "authorization_code":
            return self._exchange(form)
        if form.get("grant_type") == "refresh_token":
            return await self._refresh(form)
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

    def _exchange(self, form: dict[str, str]) -> Response:
        self.exchanges += 1
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return _invalid_grant()
        if create_s256_code_challenge(str(form.get("code_verifier"))) != grant["challenge"]:
            self.pkce_refused += 1
            return _invalid_grant()
        return self._issue()

    async def _refresh(self, form: dict[str, str]) -> Response:
        self.refreshes += 1
        # Refresh tokens rotate: a second refresh with the same one is refused.
        if str(form.get("refresh_token")) not in self.refresh_tokens:
            return _invalid_grant()
        self.refresh_tokens.discard(str(form.get("refresh_token")))
        if self.hold_refresh is not None:
            await self.hold_refresh.wait()
        # Give concurrent refreshers time to pile up if nothing kept them out.
        await asyncio.sleep(0.05)
        return self._issue()

    def _issue(self) -> Response:
        n = next(self._ids)
        access, refresh = f"access-token-{n}", f"refresh-token-{n}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return JSONResponse(
            {
                "access_token": access,
                "refresh_token": refresh,
                "token_type": "Bearer",
                "expires_in": EXPIRES_IN,
                "scope": "activity:read profile",
            }
        )

    async def userinfo(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in self.access_tokens:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"id": SUBJECT, "name": "Ada"})


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _invalid_grant() -> Response:
    return JSONResponse(
        {"error": "invalid_grant", "error_description": "secret provider text"}, status_code=400
    )


@dataclass
class Setup:
    provider: FakeProvider
    base: str
    clock: ManualClock
    cipher: TokenCipher
    keys: list[str]

    def registration(self, name: str = "fake", base: str | None = None) -> OAuthProvider:
        base = base or self.base
        return OAuthProvider(
            name=name,
            client_id=CLIENT_ID,
            client_secret=SecretStr(CLIENT_SECRET),
            authorize_url=f"{base}/authorize",
            token_url=f"{base}/token",
            scopes=("activity:read", "profile"),
            userinfo_url=f"{base}/userinfo",
        )

    def client(self, db: Database, **kw: Any) -> OAuthClient:
        kw.setdefault("cipher", self.cipher)
        kw.setdefault("providers", [self.registration(), self.registration("other")])
        return OAuthClient(db, clock=self.clock, refresh_margin=60, **kw)


@pytest.fixture
async def fake() -> AsyncIterator[Setup]:
    provider = FakeProvider()
    keys = [Fernet.generate_key().decode()]
    async with serve_asgi(provider.app) as base:
        yield Setup(provider, base, ManualClock(1_700_000_000.0), TokenCipher(keys[0]), keys)


async def approve(url: str) -> tuple[str, str]:
    """What the user's browser does: authorize at the provider, come back with state and code."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 302, response.text
    back = parse_qs(urlsplit(response.headers["location"]).query)
    return back["state"][0], back["code"][0]


async def connect(client: OAuthClient, user: str = "u1", provider: str = "fake") -> str:
    state, code = await approve(await client.start(user, provider, REDIRECT))
    await client.finish(provider, state=state, code=code)
    return state


async def rows(db: Database, table: sa.Table) -> list[Any]:
    async with db.session(readonly=True) as session:
        return list((await session.execute(sa.select(table))).all())


# -- the flow --------------------------------------------------------------------------------


async def test_full_flow_with_pkce(db: Database, fake: Setup) -> None:
    """start gives a PKCE S256 URL, the provider checks the verifier, finish stores the account."""
    client = fake.client(db)
    url = await client.start("u1", "fake", REDIRECT)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{fake.base}/authorize"
    assert query["client_id"] == CLIENT_ID
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == REDIRECT
    assert query["scope"] == "activity:read profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32
    assert fake.provider.codes == {}

    state, code = await approve(url)
    assert state == query["state"]
    account = await client.finish("fake", state=state, code=code)

    assert fake.provider.exchanges == 1
    assert fake.provider.pkce_refused == 0
    assert (account.user_id, account.provider, account.subject) == ("u1", "fake", SUBJECT)
    assert account.expires_at == fake.clock() + EXPIRES_IN
    assert account.scope == "activity:read profile"
    token = await client.access_token("u1", "fake")
    assert token in fake.provider.access_tokens
    assert await client.account("u1", "fake") == account
    assert await rows(db, oauth_states) == []
    await client.aclose()


async def test_provider_refuses_a_tampered_verifier(db: Database, fake: Setup) -> None:
    """With the stored verifier swapped, the provider refuses the code and nothing is stored."""
    client = fake.client(db)
    state, code = await approve(await client.start("u1", "fake", REDIRECT))
    async with db.session() as session:
        await session.execute(
            sa.update(oauth_states).values(code_verifier=fake.cipher.encrypt("x" * 64))
        )
    with pytest.raises(OAuthCodeRejected) as refused:
        await client.finish("fake", state=state, code=code)
    assert fake.provider.pkce_refused == 1
    assert "secret provider text" not in str(refused.value)
    assert await rows(db, oauth_accounts) == []
    assert await client.account("u1", "fake") is None


async def test_a_state_is_used_once(db: Database, fake: Setup) -> None:
    """A second callback with the same state is refused, and so is a state never issued."""
    client = fake.client(db)
    state = await connect(client)
    before = await rows(db, oauth_accounts)
    with pytest.raises(OAuthStateError, match="already used"):
        await client.finish("fake", state=state, code="code-999")
    with pytest.raises(OAuthStateError):
        await client.finish("fake", state="forged-state", code="code-999")
    assert await rows(db, oauth_accounts) == before
    assert fake.provider.exchanges == 1


async def test_a_state_for_another_provider_is_refused(db: Database, fake: Setup) -> None:
    """A state started for one provider does not complete another's callback."""
    client = fake.client(db)
    state, code = await approve(await client.start("u1", "fake", REDIRECT))
    with pytest.raises(OAuthStateError, match="another provider"):
        await client.finish("other", state=state, code=code)
    assert await rows(db, oauth_accounts) == []
    assert fake.provider.exchanges == 0


async def test_a_state_for_another_user_is_refused(db: Database, fake: Setup) -> None:
    """A callback handled for a signed-in user other than the one who started is refused."""
    client = fake.client(db)
    state, code = await approve(await client.start("attacker", "fake", REDIRECT))
    with pytest.raises(OAuthStateError, match="another user"):
        await client.finish("fake", state=state, code=code, user_id="victim")
    assert await rows(db, oauth_accounts) == []
    assert fake.provider.exchanges == 0
    state, code = await approve(await client.start("victim", "fake", REDIRECT))
    account = await client.finish("fake", state=state, code=code, user_id="victim")
    assert account.user_id == "victim"


async def test_an_expired_state_is_refused(db: Database, fake: Setup) -> None:
    """A callback later than the state's lifetime stores nothing and never reaches the provider."""
    client = fake.client(db, state_ttl=600)
    state, code = await approve(await client.start("u1", "fake", REDIRECT))
    fake.clock.advance(601)
    with pytest.raises(OAuthStateError, match="expired"):
        await client.finish("fake", state=state, code=code)
    assert await rows(db, oauth_accounts) == []
    assert fake.provider.exchanges == 0


async def test_expired_states_are_swept_by_start(db: Database, fake: Setup) -> None:
    """Flows never finished do not pile up: the next start deletes the expired ones."""
    client = fake.client(db, state_ttl=600)
    await client.start("u1", "fake", REDIRECT)
    fake.clock.advance(601)
    await client.start("u2", "fake", REDIRECT)
    assert [r.user_id for r in await rows(db, oauth_states)] == ["u2"]


async def test_unknown_provider_is_not_found(db: Database, fake: Setup) -> None:
    """A provider name nobody registered is a 404, before anything is stored."""
    with pytest.raises(NotFound):
        await fake.client(db).start("u1", "nope", REDIRECT)
    assert await rows(db, oauth_states) == []


# -- at rest ---------------------------------------------------------------------------------


async def test_tokens_are_encrypted_at_rest_and_survive_key_rotation(
    db: Database, fake: Setup
) -> None:
    """No plaintext token or verifier is stored; a new key in front still reads old values."""
    client = fake.client(db)
    url = await client.start("u1", "fake", REDIRECT)
    challenge = parse_qs(urlsplit(url).query)["code_challenge"][0]
    (state_row,) = await rows(db, oauth_states)
    verifier = fake.cipher.decrypt(state_row.code_verifier)
    assert create_s256_code_challenge(verifier) == challenge
    assert verifier not in state_row.code_verifier
    state, code = await approve(url)
    await client.finish("fake", state=state, code=code)

    (row,) = await rows(db, oauth_accounts)
    raw = " ".join(str(v) for v in row)
    plaintexts = fake.provider.access_tokens | fake.provider.refresh_tokens
    assert plaintexts
    assert not any(p in raw for p in plaintexts)
    assert fake.cipher.decrypt(row.access_token) in fake.provider.access_tokens

    new_key = Fernet.generate_key().decode()
    rotated = fake.client(db, cipher=TokenCipher(f"{new_key},{fake.keys[0]}"))
    assert await rotated.access_token("u1", "fake") == fake.cipher.decrypt(row.access_token)
    with pytest.raises(ConfigurationError) as missing:
        await fake.client(db, cipher=TokenCipher(new_key)).access_token("u1", "fake")
    assert missing.value.setting == "TENFOLD_AUTH__TOKEN_ENCRYPTION_KEYS"

    # A refresh writes with the newest key only.
    fake.clock.advance(EXPIRES_IN)
    refreshed = await rotated.access_token("u1", "fake")
    assert await fake.client(db, cipher=TokenCipher(new_key)).access_token("u1", "fake") == (
        refreshed
    )


def test_cipher_from_settings_names_the_setting() -> None:
    """A missing or malformed key is a ConfigurationError naming the variable, not the key."""
    with pytest.raises(ConfigurationError) as missing:
        TokenCipher.from_settings(AuthSettings())
    assert missing.value.setting == "TENFOLD_AUTH__TOKEN_ENCRYPTION_KEYS"
    bad = "not-a-fernet-key-but-a-secret"
    good = Fernet.generate_key().decode()
    with pytest.raises(ConfigurationError) as invalid:
        TokenCipher.from_settings(AuthSettings(token_encryption_keys=SecretStr(f"{good},{bad}")))
    assert invalid.value.setting == "TENFOLD_AUTH__TOKEN_ENCRYPTION_KEYS"
    assert "key 2" in str(invalid.value)
    assert bad not in str(invalid.value)
    cipher = TokenCipher.from_settings(AuthSettings(token_encryption_keys=SecretStr(good)))
    assert cipher.decrypt(cipher.encrypt("hello")) == "hello"
    assert cipher.encrypt("hello") != cipher.encrypt("hello")


# -- refresh ---------------------------------------------------------------------------------


async def test_a_token_near_expiry_is_refreshed_first(db: Database, fake: Setup) -> None:
    """Within the margin the token is refreshed once; the new one is then served as is."""
    client = fake.client(db)
    await connect(client)
    first = await client.access_token("u1", "fake")
    fake.clock.advance(EXPIRES_IN - 61)
    assert await client.access_token("u1", "fake") == first
    assert fake.provider.refreshes == 0
    fake.clock.advance(2)
    second = await client.access_token("u1", "fake")
    assert second != first
    assert second in fake.provider.access_tokens
    assert await client.access_token("u1", "fake") == second
    assert fake.provider.refreshes == 1
    account = await client.account("u1", "fake")
    assert account is not None
    assert account.expires_at == fake.clock() + EXPIRES_IN


async def test_a_refused_refresh_marks_the_account_for_reconnection(
    db: Database, fake: Setup
) -> None:
    """invalid_grant on refresh raises OAuthAccountRevoked and is remembered until reconnecting."""
    client = fake.client(db)
    await connect(client)
    fake.provider.refresh_tokens.clear()  # the user revoked the app at the provider
    fake.clock.advance(EXPIRES_IN)
    with pytest.raises(OAuthAccountRevoked) as revoked:
        await client.access_token("u1", "fake")
    assert "secret provider text" not in str(revoked.value)
    account = await client.account("u1", "fake")
    assert account is not None
    assert account.needs_reconnect
    with pytest.raises(OAuthAccountRevoked):
        await client.access_token("u1", "fake")
    assert fake.provider.refreshes == 1

    await connect(client)
    account = await client.account("u1", "fake")
    assert account is not None
    assert not account.needs_reconnect
    assert await client.access_token("u1", "fake") in fake.provider.access_tokens


@pytest.mark.parametrize("status", [500, 503, 404])
async def test_a_failing_provider_is_a_dependency_error(
    db: Database, fake: Setup, status: int
) -> None:
    """A provider answering garbage leaves the stored token as it was and leaks no text."""
    client = fake.client(db)
    await connect(client)
    before = await rows(db, oauth_accounts)
    fake.provider.status_override = status
    fake.clock.advance(EXPIRES_IN)
    with pytest.raises(OAuthProviderUnavailable) as failed:
        await client.access_token("u1", "fake")
    assert isinstance(failed.value, DependencyUnavailable)
    assert failed.value.dependency == "fake"
    assert "stack trace" not in str(failed.value)
    assert await rows(db, oauth_accounts) == before
    fake.provider.status_override = None
    assert await client.access_token("u1", "fake") in fake.provider.access_tokens


async def test_an_unreachable_provider_is_a_dependency_error(db: Database, fake: Setup) -> None:
    """Nothing listening at the token URL: DependencyUnavailable, not an httpx error."""
    client = fake.client(db)
    await connect(client)
    async with serve_asgi(Starlette()) as gone:
        pass  # the port is closed again when the block ends
    cut_off = fake.client(db, providers=[fake.registration(base=gone)])
    fake.clock.advance(EXPIRES_IN)
    with pytest.raises(OAuthProviderUnavailable) as failed:
        await cut_off.access_token("u1", "fake")
    assert isinstance(failed.value.__cause__, httpx.HTTPError)
    assert "httpx" not in str(failed.value).lower()
    await cut_off.aclose()


async def test_a_hanging_refresh_is_cut_off_and_releases_the_lock(
    db: Database, fake: Setup
) -> None:
    """refresh_timeout bounds the call made under the row lock; the next caller gets through."""
    client = fake.client(db, refresh_timeout=0.3)
    await connect(client)
    fake.clock.advance(EXPIRES_IN)
    fake.provider.hold_refresh = asyncio.Event()
    with pytest.raises(OAuthProviderUnavailable):
        await client.access_token("u1", "fake")
    fake.provider.hold_refresh.set()
    fake.provider.hold_refresh = None
    # The hung refresh used up its refresh token at the provider: the account is revoked,
    # which the next caller learns without waiting on a lock left behind.
    with pytest.raises(OAuthAccountRevoked):
        await client.access_token("u1", "fake")


async def test_disconnect_forgets_the_account(db: Database, fake: Setup) -> None:
    """After disconnect there is no token to hand out."""
    client = fake.client(db)
    await connect(client)
    await connect(client, user="u2")
    assert await client.disconnect("u1", "fake") is True
    assert await client.disconnect("u1", "fake") is False
    assert await client.account("u1", "fake") is None
    with pytest.raises(OAuthAccountNotFound):
        await client.access_token("u1", "fake")
    assert await client.account("u2", "fake") is not None


# -- one refresh for everyone ------------------------------------------------------------------


@pytest.mark.parametrize("clients_per_db", [1, 10], ids=["2-instances", "20-instances"])
async def test_one_refresh_for_concurrent_callers_across_instances(
    db: Database, db_settings: DatabaseSettings, fake: Setup, clients_per_db: int
) -> None:
    """20 callers over two pools at once: the provider sees one refresh, all get its token."""
    other_db = Database(db_settings)
    await other_db.start()
    try:
        clients = [fake.client(d) for d in (db, other_db) for _ in range(clients_per_db)]
        await connect(clients[0])
        old = await clients[0].access_token("u1", "fake")
        fake.clock.advance(EXPIRES_IN - 30)  # inside the 60 s margin, not yet expired
        tokens = await asyncio.gather(
            *(clients[i % len(clients)].access_token("u1", "fake") for i in range(20))
        )
        assert fake.provider.refreshes == 1
        assert len(set(tokens)) == 1
        assert tokens[0] != old
        assert tokens[0] in fake.provider.access_tokens
        for client in clients:
            await client.aclose()
    finally:
        await other_db.stop()
