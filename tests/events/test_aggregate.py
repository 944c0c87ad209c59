"""Aggregates loaded from snapshots and events, and saved, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tenfold import NotFound, Platform, Settings
from tenfold.events import (
    Aggregate,
    AggregateNotFound,
    Aggregates,
    ConcurrencyError,
    EventsExtension,
    EventStore,
    NewEvent,
    UnknownEventType,
    on,
)


class MatchOver(Exception):
    """The match is completed: it takes no more scores."""


class Match(Aggregate):
    """A match: started, scored, completed. ``_applied`` counts events applied since built."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.teams: list[str] = []
        self.score = [0, 0]
        self.completed = False
        self._applied = 0

    def start(self, home: str, away: str) -> None:
        self.record("MatchStarted", {"home": home, "away": away})

    def update_score(self, home: int, away: int) -> None:
        if self.completed:
            raise MatchOver(self.id)
        self.record("ScoreUpdated", {"home": home, "away": away})

    def complete(self) -> None:
        self.record("MatchCompleted", {})

    @on("MatchStarted")
    def _started(self, data: dict[str, Any]) -> None:
        self.teams = [data["home"], data["away"]]
        self._applied += 1

    @on("ScoreUpdated")
    def _scored(self, data: dict[str, Any]) -> None:
        self.score = [data["home"], data["away"]]
        self._applied += 1

    @on("MatchCompleted")
    def _completed(self, data: dict[str, Any]) -> None:
        self.completed = True
        self._applied += 1


def counter_class(snapshot_version: int) -> type[Aggregate]:
    """The same aggregate, ``Counter``, as one release or the next declares it."""

    class Counter(Aggregate):
        def __init__(self, id: str) -> None:
            super().__init__(id)
            self.total = 0
            self._applied = 0

        @on("Added")
        def _added(self, data: dict[str, Any]) -> None:
            self.total += data["n"]
            self._applied += 1

    Counter.snapshot_version = snapshot_version
    return Counter


async def started_match(repo: Aggregates, stream_id: str = "match-1", scores: int = 0) -> Match:
    match = Match(stream_id)
    match.start("home", "away")
    for n in range(scores):
        match.update_score(n + 1, 0)
    await repo.save(match)
    return match


async def test_record_save_load_round_trip(store: EventStore) -> None:
    """Recorded events apply at once, save appends them, and load rebuilds the same state."""
    repo = Aggregates(store, snapshot_every=0)
    match = Match("match-1")
    match.start("ajax", "psv")
    match.update_score(1, 0)
    assert (match.version, match.saved_version, len(match.pending)) == (2, 0, 2)
    appended = await repo.save(match)
    assert appended is not None
    assert appended.version == 2
    assert (match.version, match.saved_version, match.pending) == (2, 2, ())
    assert await repo.save(match) is None
    loaded = await repo.load(Match, "match-1")
    assert (loaded.version, loaded.teams, loaded.score) == (2, ["ajax", "psv"], [1, 0])
    assert [e.type for e in await store.read_stream("match-1")] == ["MatchStarted", "ScoreUpdated"]


async def test_completed_match_refuses_scores(store: EventStore) -> None:
    """A command the state forbids raises and records nothing."""
    repo = Aggregates(store)
    match = await started_match(repo)
    match.complete()
    await repo.save(match)
    loaded = await repo.load(Match, "match-1")
    with pytest.raises(MatchOver):
        loaded.update_score(3, 3)
    assert (loaded.version, loaded.pending) == (2, ())


async def test_missing_stream_is_not_found_or_new(store: EventStore) -> None:
    """A stream without events is a 404 AggregateNotFound, or a new aggregate when asked."""
    repo = Aggregates(store)
    with pytest.raises(AggregateNotFound) as missing:
        await repo.load(Match, "nobody")
    assert isinstance(missing.value, NotFound)
    assert missing.value.stream_id == "nobody"
    new = await repo.load(Match, "nobody", new_if_missing=True)
    assert (new.id, new.version, new.teams) == ("nobody", 0, [])


async def test_load_uses_snapshot_and_the_tail(store: EventStore) -> None:
    """Load restores the snapshot and applies only the events after it."""
    repo = Aggregates(store, snapshot_every=5)
    match = await started_match(repo, scores=4)
    snapshot = await repo.snapshot("match-1")
    assert snapshot is not None
    assert snapshot.version == 5
    assert snapshot.state == {"teams": ["home", "away"], "score": [4, 0], "completed": False}
    match.update_score(9, 9)
    match.update_score(10, 9)
    await repo.save(match)
    loaded = await repo.load(Match, "match-1")
    assert loaded._applied == 2
    assert (loaded.version, loaded.score, loaded.teams) == (7, [10, 9], ["home", "away"])


async def test_snapshot_only_when_crossing_a_multiple(store: EventStore) -> None:
    """A snapshot is written when a save crosses a multiple of snapshot_every, not otherwise."""
    repo = Aggregates(store, snapshot_every=3)
    match = Match("match-1")
    match.start("a", "b")
    seen = []
    for n in range(5):
        await repo.save(match)
        snapshot = await repo.snapshot("match-1")
        seen.append(None if snapshot is None else snapshot.version)
        match.update_score(n, 0)
    assert seen == [None, None, 3, 3, 3]
    for n in range(4):
        match.update_score(n, 1)
    await repo.save(match)  # from 5 to 10: crosses 6 and 9, one snapshot at 10
    snapshot = await repo.snapshot("match-1")
    assert snapshot is not None
    assert snapshot.version == 10
    off = Aggregates(store, snapshot_every=0)
    match.update_score(0, 0)
    match.update_score(0, 0)
    match.update_score(0, 0)
    await off.save(match)  # to 13, across 12, with snapshots off
    snapshot = await repo.snapshot("match-1")
    assert snapshot is not None
    assert snapshot.version == 10


async def test_snapshot_of_an_old_version_is_ignored(store: EventStore) -> None:
    """A snapshot of another snapshot_version is ignored, then replaced by a current one."""
    repo = Aggregates(store, snapshot_every=2)
    old, new = counter_class(1), counter_class(2)
    counter = old("c-1")
    for n in range(3):
        counter.record("Added", {"n": n})
    await repo.save(counter)
    loaded_old = await repo.load(old, "c-1")
    assert loaded_old._applied == 0
    loaded_new = await repo.load(new, "c-1")
    assert (loaded_new._applied, loaded_new.total, loaded_new.version) == (3, 3, 3)
    loaded_new.record("Added", {"n": 10})
    await repo.save(loaded_new)
    snapshot = await repo.snapshot("c-1")
    assert snapshot is not None
    assert (snapshot.version, snapshot.schema_version, snapshot.state) == (4, 2, {"total": 13})


async def test_older_snapshot_never_replaces_a_newer_one(store: EventStore) -> None:
    """A snapshot write of an older version leaves the newer snapshot in place."""
    repo = Aggregates(store, snapshot_every=2)
    match = await started_match(repo, scores=1)
    stale = await repo.load(Match, "match-1")
    match.update_score(5, 5)
    match.update_score(6, 5)
    await repo.save(match)
    await repo._write_snapshot(stale, None)
    snapshot = await repo.snapshot("match-1")
    assert snapshot is not None
    assert (snapshot.version, snapshot.state["score"]) == (4, [6, 5])


async def test_concurrent_saves_one_conflicts(store: EventStore) -> None:
    """Two aggregates loaded at one version: the first save wins, the second conflicts."""
    repo = Aggregates(store)
    await started_match(repo)
    first = await repo.load(Match, "match-1")
    second = await repo.load(Match, "match-1")
    first.update_score(1, 0)
    second.update_score(0, 1)
    await repo.save(first)
    with pytest.raises(ConcurrencyError) as conflict:
        await repo.save(second)
    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    assert len(second.pending) == 1
    reloaded = await repo.load(Match, "match-1")
    assert (reloaded.version, reloaded.score) == (2, [1, 0])


async def test_unknown_event_type_fails_the_load(store: EventStore) -> None:
    """An event without a handler fails the load naming its type, unless the class ignores it."""
    repo = Aggregates(store)
    await started_match(repo)
    await store.append("match-1", [NewEvent("RefereeChanged", {"name": "x"})], 1)
    with pytest.raises(UnknownEventType) as unknown:
        await repo.load(Match, "match-1")
    assert unknown.value.event_type == "RefereeChanged"
    assert "RefereeChanged" in str(unknown.value)

    class LenientMatch(Match):
        ignore_unknown_events = True

    lenient = await repo.load(LenientMatch, "match-1")
    assert (lenient.version, lenient._applied) == (2, 1)


async def test_save_in_a_session_rolls_back_with_it(store: EventStore) -> None:
    """Events and snapshot saved in a session are gone when it rolls back, kept when it commits."""
    repo = Aggregates(store, snapshot_every=1)
    match = Match("match-1")
    match.start("a", "b")

    async def save_then_fail() -> None:
        async with store.db.session() as session:
            await repo.save(match, session=session)
            assert await repo.snapshot("match-1", session=session) is not None
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await save_then_fail()
    assert await store.stream_version("match-1") == 0
    assert await repo.snapshot("match-1") is None
    again = Match("match-1")
    again.start("a", "b")
    async with store.db.session() as session:
        await repo.save(again, session=session)
        loaded = await repo.load(Match, "match-1", session=session)
        assert loaded.teams == ["a", "b"]
    snapshot = await repo.snapshot("match-1")
    assert snapshot is not None
    assert snapshot.version == 1


async def test_snapshot_failure_does_not_fail_the_save(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A state that cannot be snapshotted is logged; the save and later loads succeed."""

    class Unsnapshottable(Match):
        def snapshot_state(self) -> dict[str, Any]:
            return {"teams": set(self.teams)}

    repo = Aggregates(store, snapshot_every=1)
    match = Unsnapshottable("match-1")
    match.start("a", "b")
    with caplog.at_level(logging.WARNING, logger="tenfold.events"):
        appended = await repo.save(match)
    assert appended is not None
    assert appended.version == 1
    assert await repo.snapshot("match-1") is None
    assert any("snapshot" in r.getMessage() for r in caplog.records)
    assert (await repo.load(Unsnapshottable, "match-1")).teams == ["a", "b"]


async def test_ten_thousand_events_load_from_the_last_snapshot(store: EventStore) -> None:
    """A 10,000-event stream loads from its last snapshot to the same state as a full replay."""
    repo = Aggregates(store, snapshot_every=3000)
    match = Match("match-long")
    match.start("a", "b")
    for batch in range(10):
        while match.version < (batch + 1) * 1000:
            match.update_score(match.version, batch)
        await repo.save(match)
    snapshot = await repo.snapshot("match-long")
    assert snapshot is not None
    assert snapshot.version == 9000
    loaded = await repo.load(Match, "match-long")
    replayed = await Aggregates(store, snapshot_every=0).load(Match, "match-long")
    assert (loaded._applied, replayed._applied) == (1000, 10_000)
    assert loaded.version == replayed.version == 10_000
    assert loaded.snapshot_state() == replayed.snapshot_state() == match.snapshot_state()
    assert loaded.score == [9999, 9]


def test_extension_provides_aggregates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The events extension provides Aggregates on its store, snapshotting as configured."""
    monkeypatch.setenv("TENFOLD_EVENTS__SNAPSHOT_EVERY", "7")
    settings = Settings.load(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})
    platform = Platform.build(settings, extensions=[EventsExtension()], configure_logs=False)
    aggregates = platform.get(Aggregates)
    assert aggregates.store is platform.get(EventStore)
    assert aggregates.snapshot_every == 7
