"""The ``events`` extension: an ``EventStore`` on the platform's main database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tenfold._extension import Build, Extension
from tenfold.db import Database
from tenfold.events._hints import AppendHints
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

    Opt-in: ``create_app(extensions=[EventsExtension(upcasters=...)])``. On
    SQLite its tables are created when the platform starts; on PostgreSQL
    add ``tenfold.events.metadata`` to your migrations.
    """

    name = "events"
    settings_model = EventsSettings
    requires = ("db",)
    after = ("db",)

    def __init__(self, *, upcasters: Upcasters | None = None) -> None:
        self.upcasters = upcasters

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
        if build.redis is not None:
            # Subscriptions in other processes hear of appends at once instead of polling.
            channel = f"{build.settings.app.name}:events:appended"
            store.hints = build.component(AppendHints(build.redis, channel, store._wake))
        build.provide(Aggregates(store, snapshot_every=settings.snapshot_every))
        build_relay(build, store)
        if db.is_sqlite:
            build.on_started(_create_tables)

    def commands(self) -> Sequence[click.Command]:
        from tenfold.events._relay_cli import events_group

        return [events_group]


async def _create_tables(platform: Platform) -> None:
    from tenfold.events._tables import create_tables

    await create_tables(platform.get(Database))
