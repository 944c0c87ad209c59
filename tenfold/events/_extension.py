"""The ``events`` extension: an ``EventStore`` on the platform's main database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tenfold._extension import Build, Extension
from tenfold.db import Database
from tenfold.events import _follow
from tenfold.events._hints import AppendHints
from tenfold.events._problems import PROBLEMS
from tenfold.events._projection import Projection
from tenfold.events._relay_cli import build_relay
from tenfold.events._settings import EventsSettings
from tenfold.events._snapshots import Aggregates
from tenfold.events._store import EventStore
from tenfold.events._upcast import Upcasters

if TYPE_CHECKING:
    import click

    from tenfold._platform import Platform

__all__ = ["EventsExtension"]


class EventsExtension(Extension):
    """``platform.get(EventStore)`` (also ``platform.events``): the event store.

    ``platform.get(Aggregates)`` loads and saves aggregates on that store.

    Opt-in: ``create_app(extensions=[EventsExtension(upcasters=..., projections=[...])])``;
    ``platform.get(Projections)`` runs the projections. On SQLite its tables
    (and the projections') are created when the platform starts; on
    PostgreSQL add ``tenfold.events.metadata`` and the projections' tables
    to your migrations.
    """

    name = "events"
    settings_model = EventsSettings
    requires = ("db",)
    # jobs: the projections of TENFOLD_EVENTS__PROJECTIONS_IN=worker follow the worker's life.
    after = ("db", "jobs")

    def __init__(
        self, *, upcasters: Upcasters | None = None, projections: Sequence[Projection] = ()
    ) -> None:
        self.upcasters = upcasters
        self.projections = list(projections)

    def build(self, build: Build) -> None:
        settings: EventsSettings = build.section
        db = build.get(Database)
        store = EventStore(
            db,
            upcasters=self.upcasters,
            poll_interval=settings.poll_interval,
            page_size=settings.page_size,
        )
        build.provide(store, name="events")
        build.problems(PROBLEMS)
        if build.redis is not None:
            # Subscriptions in other processes hear of appends at once instead of polling.
            channel = f"{build.settings.app.name}:events:appended"
            store.hints = build.component(AppendHints(build.redis, channel, store._wake))
        build.provide(Aggregates(store, snapshot_every=settings.snapshot_every))
        build_relay(build, store)
        if db.is_sqlite:
            build.on_started(_create_tables)
        _follow.install(build, store, self.projections)

    def commands(self) -> Sequence[click.Command]:
        from tenfold.events._projections_cli import projections_group
        from tenfold.events._relay_cli import events_group

        return [projections_group, events_group]


async def _create_tables(platform: Platform) -> None:
    from tenfold.events._tables import create_tables

    await create_tables(platform.get(Database))
