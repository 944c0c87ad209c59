"""Two `tenfold run` instances of one realtime app on the harness Redis, with real clients.

Each instance is a subprocess on its own loopback port; the test process
publishes through its own platform on the same Redis and app name, so its
publications are the server side's. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenfold import CoreSettings, DependencyUnavailable, Platform, RedisSettings, Settings
from tenfold.realtime import (
    Realtime,
    RealtimeClient,
    RealtimeError,
    RealtimeExtension,
    RealtimeSettings,
    StreamPosition,
)
from tenfold.testing import RedisServer, allocate_port, release_port

REPO = Path(__file__).resolve().parents[2]
TENFOLD = Path(sys.executable).with_name("tenfold")
APP = "tests.realtime.instances_app:make_app()"
_NOT_INHERITED = ("TENFOLD_", "PYTHONPATH", "PROMETHEUS_", "FORWARDED_ALLOW_IPS")
APP_NAME = "rtcross"
#: What every instance and the test's own platform share (history is trimmed by whoever
#: publishes, so the bound must be the same everywhere).
REALTIME = {"history_size": "60", "presence_ttl": "2"}


class Instance:
    """One `tenfold run` of the app: its process, HTTP base and WebSocket URL."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.base = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/realtime"

    async def ready_status(self) -> int | None:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                return (await client.get(f"{self.base}/ready")).status_code
        except httpx.TransportError:
            return None


class Cluster:
    """Starts instances on ``redis_server``; stops whatever is still running at the end."""

    def __init__(self, tmp_path: Path, redis: RedisServer, stack: AsyncExitStack) -> None:
        self.tmp_path = tmp_path
        self.redis = redis
        self.stack = stack
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
        self.env.update(
            TENFOLD_APP__NAME=APP_NAME,
            TENFOLD_DB__URL=f"sqlite+aiosqlite:///{tmp_path}/app.db",
            TENFOLD_REDIS__URL=redis.url,
            TENFOLD_HEALTH__DRAIN_DELAY="0",
            **{f"TENFOLD_REALTIME__{k.upper()}": v for k, v in REALTIME.items()},
        )

    async def start(self, *names: str, **env: str) -> list[Instance]:
        """Start one instance per name (at once), each ready (``/ready`` 200)."""
        return list(await asyncio.gather(*(self._start(name, env) for name in names)))

    async def _start(self, name: str, env: dict[str, str]) -> Instance:
        port = allocate_port()
        log = self.tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                str(TENFOLD), "run", "--app", APP, "--app-dir", str(REPO), "--port", str(port),
                cwd=self.tmp_path, env={**self.env, **env}, stdout=out, stderr=out,
            )  # fmt: skip
        instance = Instance(proc, port, log)
        self.stack.push_async_callback(self._stop, instance)
        for _ in range(300):
            if await instance.ready_status() == 200:
                return instance
            if proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} never became ready:\n{log.read_text(errors='replace')}")

    async def _stop(self, instance: Instance) -> None:
        if instance.proc.returncode is None:
            instance.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(instance.proc.wait(), 30)
        except TimeoutError:
            instance.proc.kill()
            await instance.proc.wait()
            raise
        finally:
            release_port(instance.port)

    def platform(self) -> Platform:
        """The server side in the test process: the same app name, Redis and history bound."""
        sections = [*Settings.sections.items(), ("realtime", RealtimeSettings)]
        composed = CoreSettings.compose(sections)
        settings = composed.load(
            app={"name": APP_NAME},
            db={"url": f"sqlite+aiosqlite:///{self.tmp_path}/app.db"},
            redis=RedisSettings(url=self.redis.url),
            realtime=REALTIME,
        )
        return Platform.build(settings, extensions=[RealtimeExtension()], configure_logs=False)


@pytest.fixture
async def cluster(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Cluster]:
    async with AsyncExitStack() as stack:
        yield Cluster(tmp_path, redis_server, stack)


@pytest.fixture(scope="module")
async def pair(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two instances for the tests that neither stop them nor touch Redis (each uses
    channels of its own): starting them was most of each test."""
    async with AsyncExitStack() as stack:
        shared = Cluster(tmp_path_factory.mktemp("pair"), redis_server, stack)
        one, two = await shared.start("one", "two")
        yield one, two


@pytest.fixture
async def server_side(cluster: Cluster) -> AsyncIterator[Realtime]:
    async with cluster.platform() as platform:
        yield platform.get(Realtime)


@asynccontextmanager
async def client(url: str) -> AsyncIterator[RealtimeClient]:
    async with asyncio.timeout(10):
        connection = RealtimeClient(url)
        await connection.open()
    try:
        yield connection
    finally:
        async with asyncio.timeout(10):
            await connection.close()


async def take(connection: RealtimeClient, channel: str, count: int) -> list[dict[str, Any]]:
    """The next ``count`` items of ``channel``; fails after 10 s (a hang guard)."""
    items: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        async for item in connection.publications(channel):
            items.append(item)
            if len(items) == count:
                break
    return items


def channel(kind: str) -> str:
    return f"{kind}:{secrets.token_hex(4)}"


async def test_publications_cross_instances_in_order_once(
    pair: tuple[Instance, Instance], server_side: Realtime
) -> None:
    """Publications made by a client on one instance and by another process reach a
    subscriber on the other instance in offset order, each once."""
    one, two = pair
    room = channel("chat")
    async with client(one.ws) as publisher, client(two.ws) as subscriber:
        await subscriber.subscribe(room)
        for i in range(40):
            if i % 2:
                await server_side.publish(room, {"i": i})
            else:
                assert (await publisher.publish(room, {"i": i}))["offset"] == i + 1
        # The last one marks the end: anything duplicated would arrive before it.
        await server_side.publish(room, {"i": "end"})
        items = await take(subscriber, room, 41)
        assert subscriber.received(room) == []
    assert [item["offset"] for item in items] == list(range(1, 42))
    assert [item["data"]["i"] for item in items] == [*range(40), "end"]
    assert len({item["epoch"] for item in items}) == 1


async def test_resume_on_the_other_instance(
    pair: tuple[Instance, Instance], server_side: Realtime
) -> None:
    """A client that missed 50 publications on one instance gets exactly those 50, in order,
    by resuming on the other; once more than the history bound is missed, it is told to
    resync."""
    one, two = pair
    room = channel("tournament")
    async with client(one.ws) as first:
        await first.subscribe(room)
        await server_side.publish(room, {"i": 0})
        await take(first, room, 1)
        seen = dict(first.positions)
    for i in range(1, 51):
        await server_side.publish(room, {"i": i})
    async with client(two.ws) as second:
        result = (await second.resume(seen))[room]
        assert (result["recovered"], result["resync"]) == (True, False)
        items = await take(second, room, 50)
        assert [item["offset"] for item in items] == list(range(2, 52))
        assert [item["data"]["i"] for item in items] == list(range(1, 51))
        assert second.positions[room] == StreamPosition(51, seen[room].epoch)
        seen = dict(second.positions)
    for i in range(51, 51 + int(REALTIME["history_size"]) + 1):
        await server_side.publish(room, {"i": i})
    async with client(one.ws) as third:
        result = (await third.resume(seen))[room]
        assert (result["resync"], result.get("pubs", [])) == (True, [])
        assert result["offset"] == 51 + int(REALTIME["history_size"]) + 1
        assert await take(third, room, 1) == [{"resync": True}]


async def test_presence_across_instances_and_a_killed_one(cluster: Cluster) -> None:
    """Presence lists the subscribers of both instances; after one is SIGKILLed its members
    lapse within the presence TTL while the other's stay."""
    one, two = await cluster.start("one", "two")
    room = channel("room")
    ttl = float(REALTIME["presence_ttl"])
    async with AsyncExitStack() as stack:
        on_one = [await stack.enter_async_context(client(one.ws)) for _ in range(2)]
        on_two = await stack.enter_async_context(client(two.ws))
        for connection in on_one:
            await connection.subscribe(room)
        killed = set((await on_two.presence(room))["members"])
        await on_two.subscribe(room)
        members = (await on_one[0].presence(room))["members"]
        assert len(killed) == 2
        assert len(members) == 3
        assert (await on_two.presence(room))["members"] == members
        assert (await on_two.presence_count(room))["count"] == 3
        one.proc.kill()
        await one.proc.wait()
        survivors = await until_members(on_two, room, 1, within=ttl * 5)
        assert set(survivors) == set(members) - killed
        # Its heartbeat keeps it there for longer than a TTL.
        await asyncio.sleep(ttl * 1.5)
        assert (await on_two.presence(room))["members"] == survivors


async def until_members(
    connection: RealtimeClient, room: str, count: int, *, within: float
) -> dict[str, Any]:
    """The channel's members once there are ``count`` of them; fails after ``within`` s."""
    async with asyncio.timeout(within):
        while True:
            members = (await connection.presence(room))["members"]
            if len(members) == count:
                return members
            await asyncio.sleep(0.1)


async def test_a_subscriber_with_its_reply_is_in_the_presence(
    pair: tuple[Instance, Instance],
) -> None:
    """Once a client has its subscribe reply, presence on the other instance lists it."""
    one, two = pair
    room = channel("room")
    async with AsyncExitStack() as stack:
        observer = await stack.enter_async_context(client(two.ws))
        for joined in range(1, 21):
            connection = await stack.enter_async_context(client(one.ws))
            await connection.subscribe(room)
            assert (await observer.presence_count(room))["count"] == joined


async def test_redis_outage_fails_publishes_then_resyncs(
    cluster: Cluster, server_side: Realtime, redis_server: RedisServer
) -> None:
    """While Redis is down publishing fails with an error on both sides; once it is back,
    the connected subscribers are told to resync (a Redis without persistence lost the
    history), keep receiving, and a resume from before the outage gets a resync."""
    one, two = await cluster.start("one", "two")
    room = channel("chat")
    async with client(one.ws) as publisher, client(two.ws) as subscriber:
        for connection in (publisher, subscriber):
            await connection.subscribe(room)
        for i in range(3):
            await publisher.publish(room, {"i": i})
        before = await take(subscriber, room, 3)
        await take(publisher, room, 3)
        old = subscriber.positions[room]
        await asyncio.to_thread(redis_server.stop)
        async with asyncio.timeout(10):
            with pytest.raises(RealtimeError) as refused:
                await publisher.publish(room, {"i": "lost"})
            with pytest.raises(DependencyUnavailable):
                await server_side.publish(room, {"i": "lost"})
        assert refused.value.code == 503
        await asyncio.to_thread(redis_server.start)
        # Each instance reads history back once its pub/sub is live again: a new epoch.
        assert await take(subscriber, room, 1) == [{"resync": True}]
        assert await take(publisher, room, 1) == [{"resync": True}]
        at_resync = subscriber.positions[room]
        await publisher.publish(room, {"i": "after"})
        (after,) = await take(subscriber, room, 1)
        assert subscriber.received(room) == []
    assert [item["offset"] for item in before] == [1, 2, 3]
    assert (after["offset"], after["data"]) == (1, {"i": "after"})
    assert after["epoch"] != old.epoch
    assert at_resync == StreamPosition(0, after["epoch"])
    async with client(two.ws) as resumed:
        result = (await resumed.resume({room: old}))[room]
        assert (result["resync"], result["offset"], result["epoch"]) == (True, 1, after["epoch"])


async def test_sigterm_drains_an_instance(cluster: Cluster, server_side: Realtime) -> None:
    """SIGTERM makes an instance's /ready answer 503 and closes its clients with 4000 while
    the other instance's keep receiving; a drained client resumes there without a gap."""
    (one,) = await cluster.start("one", TENFOLD_HEALTH__DRAIN_DELAY="1")
    (two,) = await cluster.start("two")
    room = channel("tournament")
    async with AsyncExitStack() as stack:
        drained = [await stack.enter_async_context(client(one.ws)) for _ in range(2)]
        staying = await stack.enter_async_context(client(two.ws))
        for connection in (*drained, staying):
            await connection.subscribe(room)
        await server_side.publish(room, {"i": 0})
        for connection in (*drained, staying):
            await take(connection, room, 1)
        one.proc.send_signal(signal.SIGTERM)
        statuses = await ready_until_gone(one)
        async with asyncio.timeout(10):
            codes = [await connection.wait_closed() for connection in drained]
            await one.proc.wait()
        await server_side.publish(room, {"i": 1})
        assert [item["data"] for item in await take(staying, room, 1)] == [{"i": 1}]
        async with client(two.ws) as resumed:
            result = (await resumed.resume(drained[0].positions))[room]
    assert 503 in statuses
    assert set(statuses[statuses.index(503) :]) == {503}
    assert codes == [4000, 4000]
    assert drained[0].close_reason == "reconnect elsewhere"
    assert one.proc.returncode in (0, -signal.SIGTERM)
    assert (result["recovered"], [p["offset"] for p in result["pubs"]]) == (True, [2])


async def ready_until_gone(instance: Instance) -> list[int]:
    """The statuses /ready answers until the instance stops listening (at most 20 s)."""
    statuses: list[int] = []
    async with asyncio.timeout(20):
        while (status := await instance.ready_status()) is not None:
            statuses.append(status)
            await asyncio.sleep(0.02)
    return statuses
