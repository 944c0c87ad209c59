"""``AuthExtension``: identity and access, in the kernel's authentication slot."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import click

from tenfold._context import Principal
from tenfold._extension import Build, Extension
from tenfold._platform import Platform
from tenfold.auth._apikeys import ApiKeys
from tenfold.auth._authenticate import Authenticator
from tenfold.auth._cipher import TokenCipher
from tenfold.auth._keys import KeySet
from tenfold.auth._nostore import NoStoreMiddleware
from tenfold.auth._oauth import OAuthClient
from tenfold.auth._oauth_model import OAuthProvider
from tenfold.auth._passwords import Passwords
from tenfold.auth._problems import PROBLEMS
from tenfold.auth._rbac import Access, Grants, Roles
from tenfold.auth._refresh import RefreshTokens
from tenfold.auth._routes import AuthRoutes, auth_routers
from tenfold.auth._settings import AuthSettings
from tenfold.auth._tokens import AccessTokens
from tenfold.auth._users import Users
from tenfold.db import Database
from tenfold.ratelimit import LimiterBackend, MemoryBackend, Rule
from tenfold.web import Slot

__all__ = ["AuthExtension"]


class AuthExtension(Extension):
    """Users, tokens, browser sessions, roles, API keys and OAuth accounts.

    ``create_app(extensions=[AuthExtension(roles={...})])`` fills the kernel's
    authentication slot, so the rate limiter, the HTTP cache, jobs and realtime all
    see the principal; serves the routes under ``TENFOLD_AUTH__ROUTES_PREFIX``; and
    provides ``Users``, ``AccessTokens``, ``RefreshTokens``, ``ApiKeys``, ``Access``
    and (with ``oauth_providers``) ``OAuthClient`` through ``platform.get``.
    ``roles`` maps each role to its permissions (``{"organiser": ["matches:*"]}``).
    On SQLite the tables are created when the platform starts; on PostgreSQL add
    ``tenfold.auth.metadata`` to your migrations.
    """

    name = "auth"
    settings_model = AuthSettings
    requires = ("db",)
    after = ("db", "ratelimit")

    def __init__(
        self,
        *,
        roles: Roles | Mapping[str, Iterable[str]] | None = None,
        oauth_providers: Iterable[OAuthProvider] = (),
        routes: bool = True,
    ) -> None:
        self.roles = roles if isinstance(roles, Roles) else Roles(roles or {})
        self.oauth_providers = list(oauth_providers)
        self.routes = routes
        self._access: Access | None = None

    def channel_permission(
        self, permission: str, *, resource: Callable[[str], str | None] = lambda channel: channel
    ) -> Callable[[Principal | None, str], Awaitable[bool]]:
        """A realtime permission hook deciding with the same rules as the routes:
        ``RealtimeExtension(can_subscribe=auth.channel_permission("tournaments:watch"))``.

        The channel is the resource by default, so a role granted on
        ``tournament:42`` covers the channel ``tournament:42``.
        """

        async def allowed(principal: Principal | None, channel: str) -> bool:
            if self._access is None:
                raise RuntimeError("the auth extension is not built yet")
            return await self._access.can(principal, permission, resource(channel))

        return allowed

    def build(self, build: Build) -> None:
        settings: AuthSettings = build.section
        app_name = build.settings.app.name
        db = build.get(Database)
        keys = KeySet.from_settings(settings)
        tokens = AccessTokens(
            keys,
            issuer=settings.issuer or app_name,
            audience=settings.audience or app_name,
            ttl=settings.access_ttl,
            leeway=settings.leeway,
            algorithm=settings.algorithm,
        )
        passwords = Passwords.from_settings(settings)
        users = Users(db, passwords)
        refresh = RefreshTokens(db, ttl=settings.refresh_ttl, grace=settings.refresh_grace)
        api_keys = ApiKeys.from_settings(db, settings)
        grants = Grants(db)
        access = self._access = Access(self.roles, grants)
        authenticator = Authenticator(
            tokens,
            api_keys=api_keys,
            api_key_prefix=settings.api_key_prefix,
            api_key_header=settings.api_key_header,
            session_cookie=settings.session_cookie,
            csrf_header=settings.csrf_header,
            allowed_origins=build.settings.http.cors_origins,
        )
        for obj in (keys, tokens, passwords, users, refresh, api_keys, grants, access, self.roles):
            build.provide(obj)
        build.provide(authenticator)
        if self.oauth_providers:
            cipher = TokenCipher.from_settings(settings)
            oauth = OAuthClient(
                db,
                cipher,
                self.oauth_providers,
                refresh_margin=settings.oauth_refresh_margin,
            )
            build.provide(oauth)
            build.component(_ClosesOAuth(oauth))
        build.authenticate(authenticator)
        build.middleware(Slot.AUTHENTICATION, NoStoreMiddleware)
        build.problems(PROBLEMS)
        if self.routes:
            limiter = build.find(LimiterBackend) or MemoryBackend()
            rules = (Rule(settings.login_limit), Rule(settings.login_limit_per_ip))
            routes = AuthRoutes(
                settings, tokens, keys, users, refresh, authenticator, limiter, rules
            )
            for router in auth_routers(routes):
                build.router(router)
        if db.is_sqlite:
            build.on_started(_create_tables)

    def commands(self) -> Sequence[click.Command]:
        from tenfold.auth._keys_cli import auth_group
        from tenfold.auth._users_cli import users_group

        if "users" not in auth_group.commands:
            auth_group.add_command(users_group)
        return [auth_group]


class _ClosesOAuth:
    """Closes the OAuth client's HTTP connections when the platform stops."""

    name = "auth-oauth"

    def __init__(self, client: OAuthClient) -> None:
        self.client = client

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.client.aclose()


async def _create_tables(platform: Platform) -> None:
    from tenfold.auth._tables import create_tables

    await create_tables(platform.get(Database))
