"""Committed events reach realtime channels through the event relay."""

from __future__ import annotations

from typing import Any

from tenfold import CoreSettings, Settings, create_app, platform_of
from tenfold.events import EventsExtension, EventsSettings, EventStore, NewEvent
from tenfold.realtime import RealtimeExtension, RealtimeSettings
from tenfold.testing import serve_asgi
from tests.realtime.conftest import peer


def channel_of(event: Any) -> str | None:
    return f"match:{event.stream_id}" if event.type != "Secret" else None


async def test_appended_events_are_pushed_to_their_channel(tmp_path: Any) -> None:
    """An append is published to the channel its function names; others are not."""
    composed = CoreSettings.compose(
        [*Settings.sections.items(), ("events", EventsSettings), ("realtime", RealtimeSettings)]
    )
    settings = composed.load(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})
    app = create_app(
        settings,
        extensions=[EventsExtension(), RealtimeExtension(events_to_channels=channel_of)],
        configure_logs=False,
    )
    async with serve_asgi(app) as base:
        url = base.replace("http://", "ws://") + "/realtime"
        store = platform_of(app).get(EventStore)
        async with peer(url) as client:
            await client.request("subscribe", {"channel": "match:7"})
            await store.append("7", [NewEvent("Secret", {"x": 1})], 0)
            await store.append("7", [NewEvent("ScoreUpdated", {"home": 2})], 1)
            assert await client.offsets("match:7", 1) == [1]
            (pub,) = [p for push in client.pushes for p in push["pubs"]]
            assert pub["data"]["type"] == "ScoreUpdated"
            assert pub["data"]["stream_id"] == "7"
            assert pub["data"]["version"] == 2
            assert pub["data"]["data"] == {"home": 2}
