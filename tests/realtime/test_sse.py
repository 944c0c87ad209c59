"""The SSE endpoint in one embedded app: ids, resume, resync, permissions, limits and drain."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from tenfold import platform_of
from tenfold.realtime import Realtime
from tests.realtime.conftest import realtime_app
from tests.realtime.test_endpoint import settings


class Events:
    """An open event stream read event by event (comments kept apart)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments = 0
        self._lines = response.aiter_lines()

    async def next(self) -> dict[str, str] | None:
        """The next event's fields (``data`` lines joined), or None when the stream ends."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(10):
            async for line in self._lines:
                if line.startswith(":"):
                    self.comments += 1
                elif line:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    fields[name] = fields[name] + "\n" + value if name in fields else value
                elif fields.keys() - {"retry"}:
                    return fields
        return None

    async def take(self, count: int) -> list[dict[str, str]]:
        events = []
        for _ in range(count):
            event = await self.next()
            assert event is not None, f"the stream ended after {len(events)} events"
            events.append(event)
        return events


@asynccontextmanager
async def stream(
    base: str, channel: str, last_id: str | None = None, **params: str
) -> AsyncIterator[Events]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as client,
        client.stream(
            "GET", "/realtime/sse", params={"channel": channel, **params}, headers=headers
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        yield Events(response)


def http(url: str) -> str:
    return url.replace("ws://", "http://").removesuffix("/realtime")


def ids(events: list[dict[str, str]]) -> list[str]:
    return [e["id"] for e in events]


async def test_events_arrive_in_order_with_ids(tmp_path: Any) -> None:
    """Each publication is one event, id ``<epoch>:<offset>`` and the published JSON as data,
    on a stream that proxies neither cache nor buffer."""
    async with realtime_app(settings(tmp_path)) as (url, app):
        rt = platform_of(app).get(Realtime)
        async with stream(http(url), "tournament:1") as events:
            headers = events.response.headers
            assert headers["content-type"].startswith("text/event-stream")
            assert headers["cache-control"] == "no-cache"
            assert headers["x-accel-buffering"] == "no"
            published = [await rt.publish("tournament:1", {"i": i}) for i in range(5)]
            got = await events.take(5)
        epoch = published[0].epoch
        assert ids(got) == [f"{epoch}:{n}" for n in range(1, 6)]
        assert [orjson.loads(e["data"]) for e in got] == [{"i": i} for i in range(5)]
        assert all("event" not in e for e in got)


async def test_resume_with_last_event_id_delivers_exactly_the_missed(tmp_path: Any) -> None:
    """Reconnecting with the last id gets exactly the 30 publications missed, in order, then
    the live ones."""
    async with realtime_app(settings(tmp_path, history_size=100)) as (url, app):
        rt = platform_of(app).get(Realtime)
        async with stream(http(url), "c") as events:
            await rt.publish("c", 0)
            (last,) = await events.take(1)
        for i in range(1, 31):
            await rt.publish("c", i)
        async with stream(http(url), "c", last_id=last["id"]) as events:
            missed = await events.take(30)
            await rt.publish("c", 31)
            (live,) = await events.take(1)
        epoch = last["id"].split(":")[0]
        assert ids(missed) == [f"{epoch}:{n}" for n in range(2, 32)]
        assert [orjson.loads(e["data"]) for e in missed] == list(range(1, 31))
        assert live["id"] == f"{epoch}:32"


async def test_first_connection_resumes_from_the_query_parameter(tmp_path: Any) -> None:
    """Without a Last-Event-ID header, ``last_event_id`` in the query names the position."""
    async with realtime_app(settings(tmp_path)) as (url, app):
        rt = platform_of(app).get(Realtime)
        first = await rt.publish("c", 0)
        for i in range(1, 4):
            await rt.publish("c", i)
        position = f"{first.epoch}:{first.offset}"
        async with stream(http(url), "c", last_event_id=position) as events:
            got = await events.take(3)
        assert ids(got) == [f"{first.epoch}:{n}" for n in (2, 3, 4)]


async def test_resume_past_history_or_from_another_epoch_resyncs(tmp_path: Any) -> None:
    """Past the history bound, or from another epoch, the first event is a resync naming the
    current position, and live events follow it."""
    async with realtime_app(settings(tmp_path, history_size=10)) as (url, app):
        rt = platform_of(app).get(Realtime)
        first = await rt.publish("c", 0)
        for i in range(20):
            await rt.publish("c", i)
        async with stream(http(url), "c", last_id=f"{first.epoch}:{first.offset}") as events:
            resync = await events.next()
            await rt.publish("c", "live")
            (live,) = await events.take(1)
        assert resync is not None
        assert resync["event"] == "resync"
        assert resync["id"] == f"{first.epoch}:21"
        assert orjson.loads(resync["data"]) == {"channel": "c", "epoch": first.epoch, "offset": 21}
        assert live["id"] == f"{first.epoch}:22"
        async with stream(http(url), "c", last_id="gone:3") as events:
            other = await events.next()
        assert other is not None
        assert (other["event"], other["id"]) == ("resync", f"{first.epoch}:22")


async def test_refused_and_bad_requests_are_problems(tmp_path: Any) -> None:
    """A refused channel is a 403 problem; a bad channel, several channels or a malformed
    Last-Event-ID are 400s."""

    def can_subscribe(principal: Any, channel: str) -> bool:
        return not channel.startswith("admin:")

    async with (
        realtime_app(settings(tmp_path), can_subscribe=can_subscribe) as (url, _),
        httpx.AsyncClient(base_url=http(url), timeout=10) as client,
    ):
        refused = await client.get("/realtime/sse", params={"channel": "admin:1"})
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"] == "not allowed to subscribe to admin:1"
        for params, headers in (
            ({"channel": "{no}"}, {}),
            ({}, {}),
            ({"channel": ["a", "b"]}, {}),
            ({"channel": "a"}, {"Last-Event-ID": "17"}),
        ):
            bad = await client.get("/realtime/sse", params=params, headers=headers)
            assert bad.status_code == 400, (params, headers)
            assert bad.headers["content-type"] == "application/problem+json"


async def test_streams_over_the_per_ip_cap_are_refused(tmp_path: Any) -> None:
    """The stream past the per-address cap is a 429; ending one frees its slot."""
    async with realtime_app(settings(tmp_path, max_connections_per_ip=1)) as (url, _):
        async with (
            stream(http(url), "c"),
            httpx.AsyncClient(base_url=http(url), timeout=10) as client,
        ):
            over = await client.get("/realtime/sse", params={"channel": "c"})
            assert over.status_code == 429
        async with stream(http(url), "c") as again:
            assert again.response.status_code == 200


async def test_keepalive_comments_and_retry_hint(tmp_path: Any) -> None:
    """A silent stream starts with the retry hint and gets keep-alive comments."""
    async with (
        realtime_app(settings(tmp_path, sse_keepalive=0.05, sse_retry=2.5)) as (url, _),
        stream(http(url), "c") as events,
    ):
        lines = []
        async with asyncio.timeout(10):
            async for line in events.response.aiter_lines():
                lines.append(line)
                if lines.count(":") == 2:
                    break
        assert lines[0] == "retry: 2500"


async def test_drain_ends_the_stream(tmp_path: Any) -> None:
    """When the process starts draining, open streams end and new ones are refused (503)."""
    async with realtime_app(settings(tmp_path)) as (url, app):
        async with stream(http(url), "c") as events:
            platform_of(app).lifecycle.begin_drain()
            assert await events.next() is None
        async with httpx.AsyncClient(base_url=http(url), timeout=10) as client:
            refused = await client.get("/realtime/sse", params={"channel": "c"})
        assert refused.status_code == 503


async def test_slow_consumer_stream_is_ended(tmp_path: Any) -> None:
    """A client that stops reading has its stream ended once its queue is full; another
    stream on the channel gets every publication."""
    async with realtime_app(settings(tmp_path, send_queue=64)) as (url, app):
        rt = platform_of(app).get(Realtime)
        parts = urlsplit(http(url))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=8192)
        writer.write(b"GET /realtime/sse?channel=c HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"retry:")  # subscribed; it reads nothing from here on
        async with stream(http(url), "c") as fast:
            reading = asyncio.create_task(fast.take(400))
            for i in range(400):
                await rt.publish("c", {"i": i, "pad": secrets.token_urlsafe(20_000)})
                await asyncio.sleep(0)
            assert len(await reading) == 400
        assert rt.stats.slow_consumers == 1
        async with asyncio.timeout(10):
            while not (await reader.read(65536)).endswith(b"0\r\n\r\n"):
                pass
        writer.close()


async def test_empty_path_disables_the_endpoint(tmp_path: Any) -> None:
    """With TENFOLD_REALTIME__SSE_PATH empty there is no SSE route."""
    async with (
        realtime_app(settings(tmp_path, sse_path="")) as (url, _),
        httpx.AsyncClient(base_url=http(url), timeout=10) as client,
    ):
        missing = await client.get("/realtime/sse", params={"channel": "c"})
        assert missing.status_code == 404


async def test_open_streams_are_a_metric_and_head_is_refused(tmp_path: Any) -> None:
    """``realtime_sse_streams`` counts the open streams; a HEAD opens none (405)."""
    async with (
        realtime_app(settings(tmp_path)) as (url, _),
        httpx.AsyncClient(base_url=http(url), timeout=10) as client,
    ):
        head = await client.head("/realtime/sse", params={"channel": "c"})
        assert head.status_code == 405
        assert head.headers["allow"] == "GET"
        async with stream(http(url), "c"), stream(http(url), "d"):
            scrape = (await client.get("/metrics")).text
        assert "tenfold_realtime_sse_streams 2.0" in scrape.splitlines()
