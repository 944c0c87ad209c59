"""Projections: catch-up in batches, exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from tenfold.events import (
    EventStore,
    NewEvent,
    Position,
    ProjectionError,
    ProjectionRunner,
    Projections,
)
from tenfold.events._follow import create_tables
from tenfold.events._projection import Projection
from tenfold.testing import ManualClock
from tests.events.leaderboard import Leaderboard, board, expected, match

MakeProjections = Callable[..., Projections]


@pytest.fixture
async def make_projections(store: EventStore) -> MakeProjections:
    """Projections over ``store`` with the leaderboard's tables created."""
    await create_tables(store.db, [Leaderboard()])

    def make(*projections: Projection, batch_size: int = 7) -> Projections:
        return Projections(store, projections or [Leaderboard()], batch_size=batch_size)

    return make


async def seed(store: EventStore, count: int, *, seed: int = 1) -> list[NewEvent]:
    """``count`` random matches over a few streams, and other events between them."""
    rng = random.Random(seed)
    matches = [match(rng, n) for n in range(count)]
    versions: dict[str, int] = {}
    for n, event in enumerate(matches):
        stream = f"season{seed}-{n % 3}"
        extra = [NewEvent("MatchStarted", {"n": n})] if n % 4 == 0 else []
        appended = await store.append(stream, [*extra, event], versions.get(stream, 0))
        versions[stream] = appended.version
    return matches


async def test_catch_up_builds_the_read_model(
    store: EventStore, make_projections: MakeProjections
) -> None:
    """catch_up applies every match once, batch by batch; the checkpoint ends at the log's end."""
    matches = await seed(store, 40)
    projections = make_projections()
    reached = await projections.catch_up("leaderboard")
    log = await store.read_all(limit=1000)
    assert reached == log[-1].position
    async with store.db.session(readonly=True) as session:
        assert await board(session) == expected(matches)
    status = await projections.status("leaderboard")
    assert (status.checkpoint, status.behind) == (reached, 0)
    await seed(store, 5, seed=2)
    assert (await projections.status("leaderboard")).behind == 5 + 2


async def test_a_handler_failure_rolls_back_its_batch(
    store: EventStore, make_projections: MakeProjections
) -> None:
    """A failing handler leaves the batch's writes and the checkpoint unmoved; a retry applies
    each event once."""
    matches = await seed(store, 30)
    leaderboard = Leaderboard(fail_on={12})
    projections = make_projections(leaderboard, batch_size=5)
    log = await store.read_all(limit=1000)
    with pytest.raises(ProjectionError) as failed:
        await projections.catch_up("leaderboard")
    bad = next(e for e in log if e.type == "MatchCompleted" and e.data["n"] == 12)
    assert failed.value.context["stream_id"] == bad.stream_id
    assert failed.value.context["version"] == bad.version
    assert failed.value.context["position"] == str(bad.position)
    done = log.index(bad) // 5 * 5  # events in the batches committed before the failing one
    status = await projections.status("leaderboard")
    assert status.checkpoint == log[done - 1].position
    applied = [e.data["n"] for e in log[:done] if e.type == "MatchCompleted"]
    async with store.db.session(readonly=True) as session:
        assert await board(session) == expected([matches[n] for n in applied])
    leaderboard.fail_on.clear()
    await projections.catch_up("leaderboard")
    async with store.db.session(readonly=True) as session:
        assert await board(session) == expected(matches)
    assert len(leaderboard.applied) == len(set(leaderboard.applied))


async def test_two_runners_apply_each_event_once(
    store: EventStore, make_projections: MakeProjections
) -> None:
    """Two runners of one projection, catching up at once while events arrive, apply each once."""
    first, second = Leaderboard(), Leaderboard()
    runners = [make_projections(first, batch_size=3), make_projections(second, batch_size=3)]
    rng = random.Random(5)
    matches: list[NewEvent] = []

    async def append() -> None:
        for n in range(60):
            matches.append(match(rng, n))
            await store.append(f"m-{n}", [matches[-1]], 0)
            await asyncio.sleep(0)

    async def follow(projections: Projections) -> None:
        for _ in range(30):
            await projections.catch_up("leaderboard")
            await asyncio.sleep(0)

    await asyncio.gather(append(), follow(runners[0]), follow(runners[1]))
    await runners[0].catch_up("leaderboard")
    async with store.db.session(readonly=True) as session:
        assert await board(session) == expected(matches)
    assert len(first.applied) + len(second.applied) == 60
    assert not set(first.applied) & set(second.applied)


async def test_wait_for_reads_your_writes(
    store: EventStore, make_projections: MakeProjections
) -> None:
    """After an append, wait_for(position) returns once the read model includes it."""
    projections = make_projections()
    event = match(random.Random(3), 0)
    appended = await store.append("m-1", [event], 0)
    reached = await projections.wait_for("leaderboard", appended.position)
    assert reached >= appended.position
    async with store.db.session(readonly=True) as session:
        assert await board(session) == expected([event])


class CountingProjections(Projections):
    """Projections that count the catch-ups made by anyone but the runner's task."""

    outside_runner = 0

    async def catch_up(self, name: str) -> Position:
        task = asyncio.current_task()
        if task is None or task.get_name() != "tenfold-projections":
            self.outside_runner += 1
        return await super().catch_up(name)


async def test_wait_for_rides_the_runner_here(store: EventStore) -> None:
    """With a runner following the projection in this process, wait_for waits for the
    runner's pass (woken by the same append) and catches up nothing itself; the read model
    holds each write when it returns."""
    await create_tables(store.db, [Leaderboard()])
    projections = CountingProjections(store, [Leaderboard()])
    runner = ProjectionRunner(projections)
    runner.begin()
    rng = random.Random(5)
    written = []
    try:
        for n in range(20):
            written.append(match(rng, n))
            appended = await store.append(f"m-{n}", [written[-1]], 0)
            reached = await projections.wait_for("leaderboard", appended.position, timeout=10)
            assert reached >= appended.position
            async with store.db.session(readonly=True) as session:
                assert await board(session) == expected(written)
    finally:
        await runner.stop()
    assert projections.outside_runner == 0


async def test_wait_for_catches_up_itself_when_the_runner_backs_off(
    store: EventStore, make_projections: MakeProjections
) -> None:
    """A runner waiting out a failure does not hold a reader for its whole delay (an hour
    here): wait_for catches up itself, and the handler's error reaches the caller."""
    leaderboard = Leaderboard(fail_on={0})
    projections = make_projections(leaderboard)
    runner = ProjectionRunner(projections, max_retry_delay=3600)
    runner.begin()
    try:
        appended = await store.append("m-1", [match(random.Random(1), 0)], 0)
        with pytest.raises(ProjectionError):
            await projections.wait_for("leaderboard", appended.position, timeout=30)
    finally:
        await runner.stop()


async def test_concurrent_readers_share_catch_ups(store: EventStore) -> None:
    """Without a runner here, fifty writers waiting for their own appends at once share
    catch-ups instead of each taking the checkpoint's lock in turn; each still returns
    only once the read model holds its write."""
    await create_tables(store.db, [Leaderboard()])
    projections = CountingProjections(store, [Leaderboard()])
    rng = random.Random(8)
    written = [match(rng, n) for n in range(50)]

    async def write(n: int) -> None:
        appended = await store.append(f"m-{n}", [written[n]], 0)
        reached = await projections.wait_for("leaderboard", appended.position, timeout=30)
        assert reached >= appended.position

    await asyncio.gather(*(write(n) for n in range(50)))
    assert projections.outside_runner < 50
    async with store.db.session(readonly=True) as session:
        assert await board(session) == expected(written)


async def test_wait_for_times_out(store: EventStore, make_projections: MakeProjections) -> None:
    """wait_for a position the log never reaches raises TimeoutError."""
    projections = make_projections()
    with pytest.raises(TimeoutError):
        await projections.wait_for("leaderboard", Position(2**62, 1), timeout=0.05)


async def test_unknown_projection_is_a_lookup_error(make_projections: MakeProjections) -> None:
    """catch_up of a name nobody registered raises LookupError naming the registered ones."""
    with pytest.raises(LookupError, match="leaderboard"):
        await make_projections().catch_up("nope")


async def test_the_runner_follows_new_events(
    store: EventStore, make_projections: MakeProjections
) -> None:
    """A started runner applies events appended after it started, without being asked."""
    projections = make_projections()
    runner = ProjectionRunner(projections)
    runner.begin()
    try:
        events = await seed(store, 10)
        last = await store.append("marker", [NewEvent("Marker")], 0)
        async with asyncio.timeout(10):
            # The runner's commits signal nothing: polling its checkpoint is the observation.
            while (await projections.status("leaderboard")).checkpoint < last.position:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        await runner.stop()
    async with store.db.session(readonly=True) as session:
        assert await board(session) == expected(events)


async def test_the_runner_waits_before_retrying_a_failure(
    store: EventStore, make_projections: MakeProjections
) -> None:
    """A failing projection is skipped until its retry delay has passed; then it catches up."""
    await seed(store, 4)
    leaderboard = Leaderboard(fail_on={0})
    clock = ManualClock()
    runner = ProjectionRunner(make_projections(leaderboard), clock=clock, max_retry_delay=8)
    await runner.run_once()
    leaderboard.fail_on.clear()
    await runner.run_once()
    assert leaderboard.applied == []
    clock.advance(store.poll_interval)
    await runner.run_once()
    assert len(leaderboard.applied) == 4
