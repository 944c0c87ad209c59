"""Append hints over Redis: a subscription in another platform wakes at once, not at its poll."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tenfold import CoreSettings, Platform, RedisSettings, Settings
from tenfold.events import EventsExtension, EventsSettings, EventStore, NewEvent
from tenfold.testing import RedisServer


def _platform(tmp_path: Path, redis_server: RedisServer) -> Platform:
    composed = CoreSettings.compose([*Settings.sections.items(), ("events", EventsSettings)])
    settings = composed.load(
        db={"url": f"sqlite+aiosqlite:///{tmp_path}/events.db"},
        redis=RedisSettings(url=redis_server.url),
        # Polling alone would take a minute: only a hint wakes the subscription in time.
        events={"poll_interval": 60},
    )
    return Platform.build(settings, extensions=[EventsExtension()], configure_logs=False)


async def test_an_append_wakes_another_platforms_subscription(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """An append in one platform reaches a caught-up subscription in another via a hint."""
    writer, reader = _platform(tmp_path, redis_server), _platform(tmp_path, redis_server)
    await writer.start()
    await reader.start()
    try:
        store: EventStore = reader.get(EventStore)
        assert [e async for e in store.subscribe(until_caught_up=True)] == []
        seen: list[str] = []

        async def follow() -> None:
            async for event in store.subscribe():
                seen.append(event.stream_id)
                return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.05)  # the follower has read the empty log and waits
        assert store.hints is not None
        assert writer.get(EventStore).hints is not None
        await writer.get(EventStore).append("m-1", [NewEvent("Started")], 0)
        await asyncio.wait_for(follower, 10)
        assert seen == ["m-1"]
        assert writer.get(EventStore).hints.sent >= 1
    finally:
        await reader.stop()
        await writer.stop()
