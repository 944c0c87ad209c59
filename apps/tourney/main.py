"""Tourney: the Beer Olympics plan on tenfold (tournaments, live leaderboards, matches).

    tenfold run --app apps.tourney.main:make_app

Everything it needs is tenfold's: accounts and roles (``tenfold.auth``), each
match as an event-sourced aggregate with the leaderboard as a projection
(``tenfold.events``), the leaderboard through the cache (``tenfold.cache``),
live pushes batched per 100 ms (``tenfold.realtime``), and the plan's TTLs and
rate limits as this app's presets (``apps/tourney/presets.py``).
"""

from __future__ import annotations

from fastapi import FastAPI

from apps.tourney import presets
from apps.tourney.api import router
from apps.tourney.page import page_router
from apps.tourney.projections import MatchState, Standings
from apps.tourney.schema import metadata
from apps.tourney.service import Tourney
from tenfold import Build, CoreSettings, Extension, Platform, Settings, create_app
from tenfold.auth import Access, AuthExtension, AuthSettings, Grants
from tenfold.cache import Cache
from tenfold.db import Database
from tenfold.events import Aggregates, EventsExtension, Projections
from tenfold.realtime import Realtime, RealtimeExtension

__all__ = ["ROLES", "TourneyExtension", "make_app"]

#: Global roles: a host creates tournaments; an admin does anything. ``organiser`` is
#: granted on one tournament (``tournament:<id>``) to whoever created it.
ROLES = {
    "host": ["tournaments:create"],
    "organiser": ["tournaments:manage", "matches:report"],
    "player": ["matches:report"],
    "admin": ["*"],
}


class TourneyExtension(Extension):
    """The app's service (``platform.get(Tourney)``) and its tables."""

    name = "tourney"
    requires = ("db", "cache", "events", "auth")
    after = ("db", "cache", "events", "auth", "realtime")

    def build(self, build: Build) -> None:
        realtime = build.find(Realtime)
        tourney = Tourney(
            build.get(Database),
            build.get(Aggregates),
            build.get(Projections),
            build.get(Cache),
            build.get(Access),
            build.get(Grants),
            publish=realtime.publish if realtime is not None else None,
        )
        build.provide(tourney)


async def _create_tables(platform: Platform) -> None:
    async with platform.get(Database).session() as session:
        await session.run_sync(lambda s: metadata.create_all(s.connection(), checkfirst=True))


def settings_with_presets(settings: CoreSettings | None = None) -> CoreSettings:
    """The environment's settings (or ``settings``) with the plan's cache TTLs added; an
    operator's ``TENFOLD_CACHE__NAMESPACES`` still wins per namespace."""
    if settings is None:
        composed = CoreSettings.compose([*Settings.sections.items(), ("auth", AuthSettings)])
        settings = composed.load()
    return settings.model_copy(update={"cache": presets.cache_settings(settings.cache)})


def make_app(settings: CoreSettings | None = None) -> FastAPI:
    """The app; ``settings`` default to the environment (``TENFOLD_*``)."""
    settings = settings_with_presets(settings)
    trusted = settings.http.trusted_proxies
    from tenfold.ratelimit import parse_networks

    policies = presets.rate_limit_policies(parse_networks(trusted))
    return create_app(
        settings,
        extensions=[
            AuthExtension(roles=ROLES),
            EventsExtension(projections=[MatchState(), Standings()]),
            RealtimeExtension(batch_window=0.1),
            TourneyExtension(),
        ],
        routers=[router, page_router()],
        rate_limits=presets.rate_limits(policies),
        on_startup=[_create_tables],
        title="Tourney",
    )
