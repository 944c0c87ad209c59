"""The relay on a platform (from ``TENFOLD_EVENTS__RELAY_*``) and ``tenfold events relay``."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import click

from tenfold._errors import ConfigurationError
from tenfold.cli import with_platform
from tenfold.events._relay import EventRelay, RelayStats
from tenfold.events._streams import MemoryStream, RedisStream

if TYPE_CHECKING:
    from tenfold._extension import Build
    from tenfold._platform import Platform
    from tenfold.events._settings import EventsSettings
    from tenfold.events._store import EventStore

__all__ = ["build_relay", "events_group"]


def build_relay(build: Build, store: EventStore) -> EventRelay:
    """The relay and its target, provided on the platform; a component when enabled.

    Always built (no I/O), so that ``tenfold events relay`` and in-process
    consumers find the target (``platform.get(RedisStream)`` or ``MemoryStream``).
    """
    settings: EventsSettings = build.section
    target: RedisStream | MemoryStream
    if _target_kind(build) == "redis":
        key = settings.relay_stream_key or f"{build.settings.app.name}:events"
        assert build.redis is not None
        target = RedisStream(build.redis.client, key, maxlen=settings.relay_maxlen)
    else:
        target = MemoryStream(maxlen=settings.relay_maxlen)
    build.provide(target)
    metrics = build.metrics
    stats = RelayStats(target.name, metrics.namespace if metrics is not None else "tenfold")
    relay = EventRelay(
        store,
        target,
        interval=settings.relay_interval,
        batch_size=settings.relay_batch_size,
        stats=stats,
    )
    build.provide(relay)
    build.collector(stats)
    if settings.relay_enabled:
        build.component(relay)
    return relay


def _target_kind(build: Build) -> str:
    kind: str = build.section.relay_target
    if kind == "auto":
        return "redis" if build.redis is not None else "memory"
    if kind == "redis" and build.redis is None:
        raise ConfigurationError(
            "the events relay publishes to Redis, but Redis is not configured: set "
            "TENFOLD_REDIS__URL, or TENFOLD_EVENTS__RELAY_TARGET=memory",
            setting="TENFOLD_EVENTS__RELAY_TARGET",
        )
    return kind


@click.group("events")
def events_group() -> None:
    """The event store: the relay that publishes committed events."""


@events_group.command("relay")
@click.option("--once", is_flag=True, help="Publish what is committed now, then exit.")
@with_platform
async def relay(platform: Platform, once: bool) -> None:
    """Publish committed events to the relay target until stopped (SIGTERM, Ctrl-C)."""
    events_relay = platform.get(EventRelay)
    if isinstance(events_relay.target, MemoryStream):
        # The command's memory stream dies with it: the events would be marked published
        # and never reach the app's own in-process consumers.
        raise click.ClickException(
            "the relay target is this process's memory: a relay command would mark events "
            "published that no consumer can read. Set TENFOLD_REDIS__URL (or "
            "TENFOLD_EVENTS__RELAY_TARGET=redis); with the memory target, let the app run "
            "the relay (TENFOLD_EVENTS__RELAY_ENABLED=true)"
        )
    if once:
        count = await events_relay.drain()
        click.echo(f"{count} events relayed to {events_relay.target.name}")
        return
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    # Already running if TENFOLD_EVENTS__RELAY_ENABLED started it with the platform.
    await events_relay.start()
    await stopping.wait()
    await events_relay.stop()
