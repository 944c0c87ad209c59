"""Tourney: the Beer Olympics plan on tenfold (tournaments, live leaderboards, matches).

    tenfold run --app apps.tourney.main:make_app

Everything it needs is tenfold's: accounts and roles (``tenfold.auth``), each
match as an event-sourced aggregate with the leaderboard as a projection
(``tenfold.events``), the leaderboard through the cache (``tenfold.cache``),
live pushes batched per 100 ms (``tenfold.realtime``), and the plan's TTLs,
rate limits and WebSocket limits as this app's presets (``apps/tourney/presets.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import Field

from apps.tourney import presets
from apps.tourney.api import router
from apps.tourney.demo import Simulator, demo_logins
from apps.tourney.media import MediaExtension, create_media_tables, media_tasks
from apps.tourney.page import page_router
from apps.tourney.projections import MatchState, Standings
from apps.tourney.schema import matches, metadata
from apps.tourney.service import Tourney
from apps.tourney.sync import router as sync_router
from tenfold import (
    Build,
    CoreSettings,
    Extension,
    Platform,
    Settings,
    SettingsSection,
    create_app,
)
from tenfold.auth import Access, AuthExtension, AuthSettings, Grants, Users
from tenfold.auth import create_tables as auth_tables
from tenfold.cache import Cache
from tenfold.db import Database
from tenfold.events import Aggregates, EventsExtension, Projections
from tenfold.events import create_tables as event_tables
from tenfold.jobs import JobsExtension
from tenfold.jobs import create_tables as job_tables
from tenfold.observability import get_logger
from tenfold.realtime import Realtime, RealtimeExtension, RealtimeSettings

__all__ = ["ROLES", "TourneyExtension", "TourneySettings", "make_app"]

_log = get_logger("tourney")

#: Global roles: a host creates tournaments; an admin does anything. ``organiser`` is
#: granted on one tournament (``tournament:<id>``) to whoever created it.
ROLES = {
    "host": ["tournaments:create"],
    "organiser": ["tournaments:manage", "matches:report"],
    "player": ["matches:report"],
    "admin": ["*"],
}


class TourneySettings(SettingsSection):
    """The app's own settings (``TENFOLD_TOURNEY__*``)."""

    demo: bool = Field(
        False,
        description="Seed a demo tournament on an empty database and play its matches "
        "(what `make run` sets).",
    )
    demo_interval: float = Field(
        1.0, gt=0, le=60, description="Seconds between two moves of the demo simulator."
    )
    api_limit: str = Field(
        presets.API_LIMIT, description="Requests per user (per address when anonymous) on /api."
    )
    upload_limit: str = Field(presets.UPLOAD_LIMIT, description="Media uploads per user.")


class TourneyExtension(Extension):
    """The app's service (``platform.get(Tourney)``), its tables and the demo."""

    name = "tourney"
    settings_model = TourneySettings
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
        build.on_started(_create_tables)
        settings: TourneySettings = build.section
        if settings.demo:
            simulator = Simulator(
                tourney,
                build.get(Users),
                build.get(Database),
                interval=settings.demo_interval,
            )
            build.component(simulator)
            build.on_started(_play(simulator))


def _play(simulator: Simulator) -> Callable[[Platform], Awaitable[None]]:
    async def begin(platform: Platform) -> None:
        if platform.worker or platform.command:
            return  # only a serving process plays the demo
        await simulator.begin()
        _log.info("demo_playing", logins=demo_logins())

    return begin


async def _create_tables(platform: Platform) -> None:
    """Every table the app uses, where it does not exist: on SQLite the extensions make
    their own, and this makes them on PostgreSQL too (an app with migrations would put
    ``tenfold.auth.metadata`` and the others in Alembic's ``target_metadata`` instead)."""
    db = platform.get(Database)
    for create in (auth_tables, event_tables, job_tables, create_media_tables):
        await create(db)
    async with db.session() as session:
        await session.run_sync(lambda s: metadata.create_all(s.connection(), checkfirst=True))


async def tournament_of(session: Any, match_id: int) -> int | None:
    """The tournament of a match, for the media uploads (None: no such match)."""
    found = await session.execute(
        sa.select(matches.c.tournament_id).where(matches.c.id == match_id)
    )
    return found.scalar()


def settings_with_presets(settings: CoreSettings | None = None) -> CoreSettings:
    """The environment's settings (or ``settings``) with the plan's cache TTLs, WebSocket
    limits and, on Redis, lease-mode rate limits (``apps.tourney.presets``). What an
    operator set wins: a namespace in ``TENFOLD_CACHE__NAMESPACES``,
    ``TENFOLD_REALTIME__MAX_CONNECTIONS_PER_IP``, ``TENFOLD_REALTIME__MESSAGES_PER_MINUTE``,
    ``TENFOLD_RATELIMIT__MODE``."""
    if settings is None:
        sections = [
            ("auth", AuthSettings),
            ("realtime", RealtimeSettings),
            ("tourney", TourneySettings),
        ]
        composed = CoreSettings.compose([*Settings.sections.items(), *sections])
        settings = composed.load()
    elif "realtime" not in type(settings).model_fields:
        # The platform would read this section from the environment; read it here, so the
        # presets apply to it and the environment's values still win over them.
        sections = [*type(settings).sections.items(), ("realtime", RealtimeSettings)]
        given = {name: getattr(settings, name) for name in type(settings).model_fields}
        settings = CoreSettings.compose(sections).load(**given)
    redis = settings.redis
    update = {
        "cache": presets.cache_settings(settings.cache),
        "realtime": presets.realtime_settings(settings.realtime),
        "ratelimit": presets.ratelimit_settings(
            settings.ratelimit, shared=redis.url is not None or bool(redis.cluster_nodes)
        ),
    }
    return settings.model_copy(update=update)


def make_app(settings: CoreSettings | None = None) -> FastAPI:
    """The app; ``settings`` default to the environment (``TENFOLD_*``)."""
    settings = settings_with_presets(settings)
    trusted = settings.http.trusted_proxies
    from tenfold.ratelimit import parse_networks

    own = getattr(settings, "tourney", None)
    limits = {} if own is None else {"api": own.api_limit, "uploads": own.upload_limit}
    policies = presets.rate_limit_policies(parse_networks(trusted), **limits)
    return create_app(
        settings,
        extensions=[
            AuthExtension(roles=ROLES),
            EventsExtension(projections=[MatchState(), Standings()]),
            RealtimeExtension(batch_window=0.1),
            JobsExtension(tasks=[media_tasks]),
            TourneyExtension(),
            MediaExtension(tournament_of=tournament_of),
        ],
        routers=[router, sync_router, page_router()],
        rate_limits=presets.rate_limits(policies),
        title="Tourney",
    )
