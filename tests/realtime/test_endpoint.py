"""The WebSocket endpoint in one embedded app: the protocol, recovery, hooks and limits."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tenfold import CoreSettings, Principal, Settings, platform_of
from tenfold.realtime import Realtime, RealtimeSettings
from tests.realtime.conftest import close_code, peer, realtime_app


def settings(tmp_path: Any, **realtime: Any) -> CoreSettings:
    composed = CoreSettings.compose([*Settings.sections.items(), ("realtime", RealtimeSettings)])
    return composed.load(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"}, realtime=realtime)


async def test_subscribe_then_receive_publications(tmp_path: Any) -> None:
    """A subscriber gets the server's publications in order, after its subscribe reply."""
    async with realtime_app(settings(tmp_path)) as (url, app):
        rt = platform_of(app).get(Realtime)
        async with peer(url) as client:
            reply = await client.request("subscribe", {"channel": "tournament:1"})
            assert reply["result"]["offset"] == 0
            for i in range(5):
                await rt.publish("tournament:1", {"i": i})
            assert await client.offsets("tournament:1", 5) == [1, 2, 3, 4, 5]
            data = [p["data"] for push in client.pushes for p in push["pubs"]]
            assert data == [{"i": i} for i in range(5)]
            assert (await client.request("ping"))["result"] == {}


async def test_resume_gets_exactly_the_missed_publications(tmp_path: Any) -> None:
    """A client that reconnects with its offset and epoch gets exactly the 50 it missed."""
    async with realtime_app(settings(tmp_path, history_size=100)) as (url, app):
        rt = platform_of(app).get(Realtime)
        async with peer(url) as client:
            first = (await client.request("subscribe", {"channel": "c"}))["result"]
            await rt.publish("c", 0)
            await client.offsets("c", 1)
            epoch = first["epoch"]
        for i in range(1, 51):
            await rt.publish("c", i)
        async with peer(url) as client:
            reply = await client.request(
                "subscribe", {"channel": "c", "recover": True, "offset": 1, "epoch": epoch}
            )
            result = reply["result"]
            assert result["recovered"] is True
            assert result["resync"] is False
            assert [p["offset"] for p in result["pubs"]] == list(range(2, 52))
            assert [p["data"] for p in result["pubs"]] == list(range(1, 51))
            await rt.publish("c", 51)
            assert await client.offsets("c", 1) == [52]


async def test_resume_beyond_history_or_epoch_resyncs(tmp_path: Any) -> None:
    """Past the history bound, or from another epoch, the reply says resync."""
    async with realtime_app(settings(tmp_path, history_size=10)) as (url, app):
        rt = platform_of(app).get(Realtime)
        first = await rt.publish("c", 0)
        for i in range(20):
            await rt.publish("c", i)
        async with peer(url) as client:
            reply = await client.request(
                "subscribe",
                {"channel": "c", "recover": True, "offset": first.offset, "epoch": first.epoch},
            )
            assert reply["result"]["resync"] is True
            assert "pubs" not in reply["result"]
            other = await client.request(
                "subscribe", {"channel": "d", "recover": True, "offset": 3, "epoch": "gone"}
            )
            assert other["result"]["resync"] is True


async def test_errors_are_replies_with_codes(tmp_path: Any) -> None:
    """Bad frames, unknown methods, a bad channel, a double subscription and a refused
    publish each get an error reply; the connection stays usable."""
    async with realtime_app(settings(tmp_path)) as (url, _), peer(url) as client:
        await client.ws.send("not json")
        await client.ws.send('{"id": 1000}')
        assert (await client.request("dance"))["error"]["code"] == 404
        bad = await client.request("subscribe", {"channel": "{no}"})
        assert bad["error"]["code"] == 400
        await client.request("subscribe", {"channel": "c"})
        assert (await client.request("subscribe", {"channel": "c"}))["error"]["code"] == 409
        refused = await client.request("publish", {"channel": "c", "data": 1})
        assert refused["error"]["code"] == 403
        assert (await client.request("ping"))["result"] == {}
        assert client.replies[None]["error"]["code"] == 400
        assert client.replies[1000]["error"]["code"] == 400


async def test_permission_hooks_decide_per_channel(tmp_path: Any) -> None:
    """An unauthorised channel is refused with 403; an allowed publish reaches subscribers."""

    def can_subscribe(principal: Any, channel: str) -> bool:
        return not channel.startswith("admin:")

    async def can_publish(principal: Any, channel: str) -> bool:
        return channel.startswith("chat:")

    async with (
        realtime_app(settings(tmp_path), can_subscribe=can_subscribe, can_publish=can_publish) as (
            url,
            _,
        ),
        peer(url) as client,
    ):
        refused = await client.request("subscribe", {"channel": "admin:1"})
        message = "not allowed to subscribe to admin:1"
        assert refused["error"] == {"code": 403, "message": message}
        await client.request("subscribe", {"channel": "chat:1"})
        published = await client.request("publish", {"channel": "chat:1", "data": "hi"})
        assert published["result"]["offset"] == 1
        assert await client.offsets("chat:1", 1) == [1]


async def test_oversized_frame_closes_with_1009(tmp_path: Any) -> None:
    """A frame over the limit closes the connection with 1009."""
    async with realtime_app(settings(tmp_path, max_frame=1024)) as (url, _), peer(url) as client:
        await client.ws.send("x" * 2000)
        assert await close_code(client.ws) == 1009


async def test_foreign_origin_is_refused(tmp_path: Any) -> None:
    """With allowed origins set, a browser from elsewhere is refused at the handshake."""
    allowed = ["https://beer.example"]
    async with realtime_app(settings(tmp_path, allowed_origins=allowed)) as (url, _):
        with pytest.raises(InvalidStatus) as refused:
            async with peer(url, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with peer(url, origin="https://beer.example") as client:
            assert (await client.request("ping"))["result"] == {}


async def test_connections_over_the_per_ip_cap_are_refused(tmp_path: Any) -> None:
    """The connection past the per-address cap is closed with 1008; closing one frees a slot."""
    async with realtime_app(settings(tmp_path, max_connections_per_ip=2)) as (url, _):
        async with peer(url) as one, peer(url) as two:
            assert (await one.request("ping"))["result"] == {}
            assert (await two.request("ping"))["result"] == {}
            async with peer(url) as three:
                assert await close_code(three.ws) == 1008
        async with peer(url) as again:
            assert (await again.request("ping"))["result"] == {}


async def test_message_rate_over_the_limit_closes_4003(tmp_path: Any) -> None:
    """A connection sending faster than its per-minute allowance is closed with 4003."""
    async with (
        realtime_app(settings(tmp_path, messages_per_minute=5)) as (url, _),
        peer(url) as client,
    ):
        for _ in range(5):
            assert (await client.request("ping"))["result"] == {}
        await client.ws.send('{"id": 99, "ping": {}}')
        assert await close_code(client.ws) == 4003


async def test_idle_connection_is_closed_4002(tmp_path: Any) -> None:
    """A client that sends nothing within the idle timeout is closed with 4002."""
    async with realtime_app(settings(tmp_path, idle_timeout=0.3)) as (url, _), peer(url) as client:
        assert await close_code(client.ws) == 4002


async def test_slow_consumer_is_dropped_and_others_get_everything(tmp_path: Any) -> None:
    """A client that never reads is closed with 4001; another on the channel gets every
    publication."""
    async with realtime_app(settings(tmp_path, send_queue=64)) as (url, app):
        rt = platform_of(app).get(Realtime)
        async with peer(url, max_size=None, rcvbuf=8192) as slow, peer(url) as fast:
            await slow.request("subscribe", {"channel": "c"})
            await fast.request("subscribe", {"channel": "c"})
            slow.ws.transport.pause_reading()  # it reads nothing from here on
            reader = asyncio.create_task(fast.offsets("c", 400))
            for i in range(400):
                # Incompressible: the connection may use per-message deflate.
                await rt.publish("c", {"i": i, "pad": secrets.token_urlsafe(20_000)})
                await asyncio.sleep(0)  # the fast reader keeps up
            assert await reader == list(range(1, 401))
            assert rt.stats.slow_consumers == 1
            slow.ws.transport.resume_reading()
            assert await close_code(slow.ws) == 4001


async def test_drain_tells_clients_to_reconnect_elsewhere(tmp_path: Any) -> None:
    """When the process starts draining, connections are closed with 4000."""
    async with realtime_app(settings(tmp_path)) as (url, app), peer(url) as client:
        await client.request("subscribe", {"channel": "c"})
        platform_of(app).lifecycle.begin_drain()
        assert await close_code(client.ws) == 4000


async def test_a_connect_token_sets_the_principal(tmp_path: Any) -> None:
    """A token in the connect frame authenticates; the hooks see its principal; a refused
    token is a 401 and closes with 1008."""

    def tokens(token: str) -> Principal | None:
        return Principal("u-7", roles=frozenset({"fan"})) if token == "good" else None

    def can_subscribe(principal: Principal | None, channel: str) -> bool:
        return principal is not None and principal.has_role("fan")

    app_settings = settings(tmp_path)
    async with realtime_app(
        app_settings, authenticate_token=tokens, can_subscribe=can_subscribe
    ) as (url, _):
        async with peer(url) as client:
            denied = await client.request("subscribe", {"channel": "c"})
            assert denied["error"]["code"] == 403
            connected = await client.request("connect", {"token": "good"})
            assert connected["result"]["user"] == "u-7"
            assert "result" in await client.request("subscribe", {"channel": "c"})
        async with peer(url) as client:
            refused = await client.request("connect", {"token": "bad"})
            assert refused["error"]["code"] == 401
            assert await close_code(client.ws) == 1008
