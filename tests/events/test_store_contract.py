"""One contract for the event store, run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from tenfold import ContextSnapshot, Principal, restore
from tenfold.events import (
    START,
    ConcurrencyError,
    EventStore,
    NewEvent,
    Position,
    Upcasters,
)
from tests.events.conftest import MakeStore


def started(n: int = 1) -> list[NewEvent]:
    return [NewEvent("Scored", {"n": i}) for i in range(n)]


async def test_append_then_read_stream(store: EventStore) -> None:
    """Appended events come back in version order with their data, type and versions."""
    appended = await store.append("m-1", started(3), 0)
    assert appended.version == 3
    events = await store.read_stream("m-1")
    assert [e.version for e in events] == [1, 2, 3]
    assert [e.data for e in events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {e.type for e in events} == {"Scored"}
    assert events[-1].position == appended.position
    assert len({e.id for e in events}) == 3


async def test_read_stream_from_a_version(store: EventStore) -> None:
    """read_stream starts at from_version and stops at to_version or the limit."""
    await store.append("m-1", started(5), 0)
    assert [e.version for e in await store.read_stream("m-1", 3)] == [3, 4, 5]
    assert [e.version for e in await store.read_stream("m-1", 2, to_version=3)] == [2, 3]
    assert [e.version for e in await store.read_stream("m-1", limit=2)] == [1, 2]
    assert await store.read_stream("nobody") == []


async def test_wrong_expected_version_raises(store: EventStore) -> None:
    """An append at a stale or future version writes nothing and says what the version is."""
    await store.append("m-1", started(2), 0)
    with pytest.raises(ConcurrencyError) as stale:
        await store.append("m-1", started(), 1)
    assert stale.value.actual == 2
    with pytest.raises(ConcurrencyError) as future:
        await store.append("m-1", started(), 5)
    assert future.value.actual == 2
    assert await store.stream_version("m-1") == 2


async def test_new_stream_expects_zero(store: EventStore) -> None:
    """Expected version 0 creates a stream; a second creation conflicts."""
    await store.append("m-1", started(), 0)
    with pytest.raises(ConcurrencyError):
        await store.append("m-1", started(), 0)


async def test_read_all_follows_append_order(store: EventStore) -> None:
    """read_all returns every stream's events in log order, and resumes after a position."""
    await store.append("a", started(2), 0)
    await store.append("b", started(1), 0)
    await store.append("a", started(1), 2)
    log = await store.read_all()
    assert [(e.stream_id, e.version) for e in log] == [("a", 1), ("a", 2), ("b", 1), ("a", 3)]
    assert [e.position for e in log] == sorted(e.position for e in log)
    rest = await store.read_all(log[1].position)
    assert [(e.stream_id, e.version) for e in rest] == [("b", 1), ("a", 3)]
    assert await store.read_all(log[-1].position) == []
    assert [e.version for e in await store.read_all(limit=1)] == [1]


async def test_metadata_comes_from_the_context(store: EventStore) -> None:
    """Events carry the request id, correlation and causation ids and the principal."""
    snap = ContextSnapshot(
        request_id="req-1", correlation_id="corr-1", principal=Principal("u-7", kind="user")
    )
    with restore(snap):
        await store.append("m-1", [NewEvent("Scored", {}, metadata={"source": "api"})], 0)
    (event,) = await store.read_stream("m-1")
    assert event.metadata == {
        "request_id": "req-1",
        "correlation_id": "corr-1",
        "causation_id": "req-1",
        "principal": {"id": "u-7", "kind": "user"},
        "source": "api",
    }
    assert event.timestamp.tzinfo is not None


async def test_upcasters_migrate_old_versions_on_read(make_store: MakeStore) -> None:
    """An event stored at schema version 1 loads as version 2 once an upcaster exists."""
    old = await make_store()
    await old.append("m-1", [NewEvent("Scored", {"score": 3})], 0)
    upcasters = Upcasters()

    @upcasters.register("Scored", 1)
    def _(data: dict) -> dict:
        return {"home": data["score"], "away": 0}

    new = await make_store(upcasters=upcasters)
    await new.append("m-1", [NewEvent("Scored", {"home": 4, "away": 1})], 1)
    events = await new.read_stream("m-1")
    assert [(e.schema_version, e.data) for e in events] == [
        (2, {"home": 3, "away": 0}),
        (2, {"home": 4, "away": 1}),
    ]
    assert [e.data for e in await new.read_all()] == [e.data for e in events]
    # The stored row is not rewritten: the old store still reads version 1.
    assert (await old.read_stream("m-1"))[0].data == {"score": 3}


async def test_append_in_a_session_rolls_back_with_it(store: EventStore) -> None:
    """Events appended in the caller's transaction vanish when it rolls back."""

    class Boom(Exception):
        pass

    async def append_then_fail() -> None:
        async with store.db.session() as session:
            await store.append("m-1", started(), 0, session=session)
            raise Boom

    with pytest.raises(Boom):
        await append_then_fail()
    assert await store.stream_version("m-1") == 0
    async with store.db.session() as session:
        await store.append("m-1", started(2), 0, session=session)
        assert await store.stream_version("m-1", session=session) == 2
    assert [e.version for e in await store.read_all()] == [1, 2]


async def test_concurrent_appends_have_one_winner(store: EventStore) -> None:
    """Twenty appends at one expected version: one commits, the rest conflict."""
    await store.append("m-1", started(), 0)
    results = await asyncio.gather(
        *(store.append("m-1", started(), 1) for _ in range(20)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, ConcurrencyError) for r in results if r not in winners)
    assert [e.version for e in await store.read_stream("m-1")] == [1, 2]


async def test_subscribe_until_caught_up_then_live(store: EventStore) -> None:
    """A subscription replays the log, then yields events appended later."""
    await store.append("a", started(3), 0)
    replay = [e async for e in store.subscribe(until_caught_up=True)]
    assert [e.version for e in replay] == [1, 2, 3]
    seen: list[int] = []

    async def follow() -> None:
        async for event in store.subscribe(after=replay[-1].position):
            seen.append(event.version)
            if len(seen) == 2:
                return

    follower = asyncio.create_task(follow())
    await store.append("a", started(2), 3)
    await asyncio.wait_for(follower, 10)
    assert seen == [4, 5]


def test_position_text_round_trips() -> None:
    """A position written as text reads back equal and orders like a tuple."""
    p = Position(12, 7)
    assert Position.parse(str(p)) == p
    assert START < Position(0, 1) < Position(1, 0)
    with pytest.raises(ValueError, match="position"):
        Position.parse("12")
