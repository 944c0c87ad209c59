"""The channel hub over the memory backplane: fan-out, joining, gaps and batches."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tenfold.realtime._backplane import MemoryBackplane
from tenfold.realtime._hub import ChannelHub
from tenfold.realtime._model import StreamPosition


class Frames:
    """A sink that decodes the frames it is pushed."""

    def __init__(self) -> None:
        self.frames: list[dict] = []

    def push(self, frame: str) -> None:
        self.frames.append(orjson.loads(frame)["push"])

    def offsets(self) -> list[int]:
        return [p["offset"] for f in self.frames for p in f.get("pubs", [])]

    def data(self) -> list[object]:
        return [p["data"] for f in self.frames for p in f.get("pubs", [])]


def subscriber_epoch(backplane: MemoryBackplane) -> str:
    return backplane._channels["c"].epoch


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def backplane() -> MemoryBackplane:
    return MemoryBackplane(history_size=10)


async def test_every_subscriber_gets_each_publication_once(backplane: MemoryBackplane) -> None:
    """Two subscribers of a channel get every publication, in order, with its JSON data."""
    hub = ChannelHub(backplane)
    sinks = [Frames(), Frames()]
    for sink in sinks:
        subscriber, _ = await hub.subscribe("c", sink)
        hub.go_live(subscriber)
    for i in range(5):
        await hub.publish("c", {"i": i})
    await settle()
    for sink in sinks:
        assert sink.offsets() == [1, 2, 3, 4, 5]
        assert sink.data() == [{"i": i} for i in range(5)]


async def test_joining_with_a_position_recovers_the_missed(backplane: MemoryBackplane) -> None:
    """A subscriber joining from offset 2 is handed 3..5 and then live ones, none twice."""
    hub = ChannelHub(backplane)
    pubs = [await hub.publish("c", i) for i in range(5)]
    sink = Frames()
    subscriber, recovery = await hub.subscribe("c", sink, pubs[1].position)
    assert [p.offset for p in recovery.publications] == [3, 4, 5]
    await hub.publish("c", 5)  # arrives while the reply is being sent: buffered
    await settle()
    hub.go_live(subscriber)
    await hub.publish("c", 6)
    await settle()
    assert sink.offsets() == [6, 7]


async def test_a_gap_in_live_delivery_is_filled_from_history(
    backplane: MemoryBackplane,
) -> None:
    """Publications the live feed missed are read from history before later ones."""
    hub = ChannelHub(backplane)
    sink = Frames()
    subscriber, _ = await hub.subscribe("c", sink)
    hub.go_live(subscriber)
    await hub.publish("c", 0)
    await settle()
    listeners = backplane._channels["c"].listeners
    saved = list(listeners)
    listeners.clear()  # the live feed drops the next three
    missed = [await hub.publish("c", i) for i in (1, 2, 3)]
    listeners.extend(saved)
    await hub.publish("c", 4)
    await settle()
    assert sink.offsets() == [1, 2, 3, 4, 5]
    assert hub.stats.history_hits >= 1
    assert missed[-1].offset == 4


async def test_a_gap_beyond_history_resyncs(backplane: MemoryBackplane) -> None:
    """When history no longer holds what the live feed missed, subscribers are told to resync."""
    hub = ChannelHub(backplane)
    sink = Frames()
    subscriber, _ = await hub.subscribe("c", sink)
    hub.go_live(subscriber)
    listeners = backplane._channels["c"].listeners
    saved = list(listeners)
    listeners.clear()
    for i in range(15):  # more than the history of 10
        await hub.publish("c", i)
    listeners.extend(saved)
    await hub.publish("c", 15)
    await settle()
    resyncs = [f for f in sink.frames if f.get("resync")]
    assert [(f["offset"], f["epoch"]) for f in resyncs] == [(16, subscriber_epoch(backplane))]
    await hub.publish("c", 16)
    await settle()
    assert sink.offsets() == [17]  # nothing from before the resync point, then live


async def test_batches_go_out_as_one_frame(backplane: MemoryBackplane) -> None:
    """With a window, a burst of publications reaches each subscriber as one frame."""
    hub = ChannelHub(backplane, batch_window=0.05, random=lambda: 0.0)
    sink = Frames()
    subscriber, _ = await hub.subscribe("c", sink)
    hub.go_live(subscriber)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.05 - loop.time() % 0.05 + 0.005)  # just past a tick: one batch
    for i in range(10):
        await hub.publish("c", i)
    await asyncio.sleep(0.15)
    assert len(sink.frames) == 1
    assert sink.offsets() == list(range(1, 11))


async def test_a_batch_goes_out_on_the_next_tick_of_the_window(
    backplane: MemoryBackplane,
) -> None:
    """A batch flushes at the hub's next tick (a multiple of the window on the loop's clock
    plus the hub's phase), so a publication waits at most one window whenever it arrives."""
    hub = ChannelHub(backplane, batch_window=0.25, random=lambda: 0.4)
    subscriber, _ = await hub.subscribe("c", Frames())
    hub.go_live(subscriber)
    loop = asyncio.get_running_loop()
    before = loop.time()
    await hub.publish("c", 1)
    await settle()
    flush = hub._channels["c"].flush
    assert flush is not None
    due = flush.when()
    assert before < due <= loop.time() + 0.25
    assert hub.batch_phase == 0.1
    ticks = (due - 0.1) / 0.25
    assert abs(ticks - round(ticks)) < 1e-6
    await hub.publish("c", 2)
    await settle()
    assert hub._channels["c"].flush is flush  # the batch's flush is not moved


async def test_the_last_subscriber_leaving_stops_listening(backplane: MemoryBackplane) -> None:
    """The hub listens to a channel only while it has local subscribers."""
    hub = ChannelHub(backplane)
    subscriber, _ = await hub.subscribe("c", Frames())
    assert hub.channels == ["c"]
    hub.unsubscribe(subscriber)
    assert hub.channels == []
    assert backplane._channels["c"].listeners == []


async def test_recovery_from_a_lost_epoch_is_a_resync(backplane: MemoryBackplane) -> None:
    """A position from an earlier epoch gets resync and the channel's current top."""
    hub = ChannelHub(backplane)
    old = await hub.publish("c", 1)
    await backplane.forget("c")
    await hub.publish("c", 2)
    _, recovery = await hub.subscribe("c", Frames(), StreamPosition(old.offset, old.epoch))
    assert recovery.resync
    assert recovery.top.offset == 1


async def test_joining_a_live_channel_reads_no_history(backplane: MemoryBackplane) -> None:
    """Once a channel is live here, subscribers from the top (or at it) join without a
    history read, and still get every later publication."""
    hub = ChannelHub(backplane)
    reads = 0
    recover = backplane.recover

    async def counting(channel: str, since: StreamPosition | None) -> Any:
        nonlocal reads
        reads += 1
        return await recover(channel, since)

    backplane.recover = counting  # type: ignore[method-assign]
    first, _ = await hub.subscribe("c", Frames())
    hub.go_live(first)
    await hub.publish("c", 0)
    await settle()
    sinks = [Frames() for _ in range(20)]
    for sink in sinks:
        subscriber, recovery = await hub.subscribe("c", sink)
        assert recovery.top.offset == 1
        hub.go_live(subscriber)
    await hub.subscribe("c", Frames(), StreamPosition(1, recovery.top.epoch))
    assert reads == 1
    await hub.publish("c", 1)
    await settle()
    assert all(sink.offsets() == [2] for sink in sinks)
    _, recovered = await hub.subscribe("c", Frames(), StreamPosition(0, recovery.top.epoch))
    assert reads == 2  # a position behind the top reads history
    assert [p.offset for p in recovered.publications] == [1, 2]
