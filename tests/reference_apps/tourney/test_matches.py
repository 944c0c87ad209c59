"""Tourney's rules through its API: who may do what, conflicts, final results, the board."""

from __future__ import annotations

import asyncio
import random

from apps.tourney.domain import Match, standings, stream_of
from apps.tourney.projections import MATCH_STATE, STANDINGS
from apps.tourney.service import Tourney
from tenfold import Principal
from tenfold.events import Aggregates, Projections
from tests.reference_apps.tourney.conftest import World


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


async def start(world: World, match_id: int) -> dict:
    return await world.ok("POST", f"/api/matches/{match_id}/start", "host")


async def test_a_player_reports_only_their_own_teams_matches(world: World) -> None:
    red_blue = world.matches[0]
    live = await start(world, red_blue)
    assert (live["status"], live["version"]) == ("live", 1)
    body = {"home": 1, "away": 0, "version": 1}
    problem(await world.call("POST", f"/api/matches/{red_blue}/score", "green1", json=body), 403)
    problem(await world.call("POST", f"/api/matches/{red_blue}/score", json=body), 401)
    scored = await world.ok("POST", f"/api/matches/{red_blue}/score", "red1", json=body)
    assert (scored["home_score"], scored["away_score"], scored["version"]) == (1, 0, 2)


async def test_conflicting_reports_one_wins_one_409(world: World) -> None:
    match_id = world.matches[0]
    await start(world, match_id)
    path = f"/api/matches/{match_id}/score"
    red, blue = (
        world.call("POST", path, "red1", json={"home": 2, "away": 1, "version": 1}),
        world.call("POST", path, "blue1", json={"home": 1, "away": 2, "version": 1}),
    )
    outcomes = await asyncio.gather(red, blue)
    assert sorted(r.status_code for r in outcomes) == [200, 409]
    loser = next(r for r in outcomes if r.status_code == 409)
    assert problem(loser, 409)["version"] == 2  # the current state comes with the refusal
    now = await world.ok("GET", f"/api/matches/{match_id}")
    winner = next(r for r in outcomes if r.status_code == 200).json()
    assert (now["home_score"], now["away_score"]) == (winner["home_score"], winner["away_score"])


async def test_a_report_that_loses_the_race_to_the_store_is_told_the_current_version(
    world: World,
) -> None:
    """Two reports made on version 1 that both load the match before either saves: the
    store refuses the second append, the report is decided again on the match as it now
    is, and its 409 carries the current version and score like any stale report."""
    match_id = world.matches[0]
    await start(world, match_id)
    tourney = world.app.state.tenfold.get(Tourney)
    real_load = tourney.aggregates.load
    raced = []

    async def load_then_lose_the_race(*args, **kwargs):
        loaded = await real_load(*args, **kwargs)
        if not raced:  # the other report saves between this load and this save
            raced.append(True)
            body = {"home": 3, "away": 0, "version": 1}
            await world.ok("POST", f"/api/matches/{match_id}/score", "red1", json=body)
        return loaded

    tourney.aggregates.load = load_then_lose_the_race
    try:
        body = {"home": 0, "away": 3, "version": 1}
        loser = await world.call("POST", f"/api/matches/{match_id}/score", "blue1", json=body)
    finally:
        tourney.aggregates.load = real_load
    refused = problem(loser, 409)
    assert (refused["version"], refused["score"]) == (2, [3, 0])


async def test_a_completed_result_is_immutable(world: World) -> None:
    match_id = world.matches[0]
    await start(world, match_id)
    await world.ok(
        "POST", f"/api/matches/{match_id}/score", "red1", json={"home": 3, "away": 1, "version": 1}
    )
    done = await world.ok("POST", f"/api/matches/{match_id}/complete", "host")
    assert done["status"] == "completed"
    late = {"home": 0, "away": 5, "version": done["version"]}
    problem(await world.call("POST", f"/api/matches/{match_id}/score", "host", json=late), 409)
    problem(await world.call("POST", f"/api/matches/{match_id}/complete", "host"), 409)
    problem(await world.call("POST", f"/api/matches/{match_id}/start", "host"), 409)
    again = await world.ok("GET", f"/api/matches/{match_id}")
    assert (again["home_score"], again["away_score"], again["status"]) == (3, 1, "completed")


async def test_another_organisers_tournament_is_404(world: World) -> None:
    """Management routes of a tournament one does not organise answer 404."""
    tid = world.tournament_id
    for path, body in (
        (f"/api/tournaments/{tid}/teams", {"name": "Sneaky"}),
        (f"/api/tournaments/{tid}/games", {"name": "Flip cup"}),
        (f"/api/matches/{world.matches[0]}/start", None),
    ):
        problem(await world.call("POST", path, "other_host", json=body), 404)
        problem(await world.call("POST", path, "red1", json=body), 404)
    problem(await world.call("POST", "/api/tournaments", "red1", json={"name": "Mine"}), 403)


async def test_mass_assignment_is_422(world: World) -> None:
    body = {"home": 1, "away": 0, "version": 1, "reported_by": "someone-else"}
    problem(
        await world.call("POST", f"/api/matches/{world.matches[0]}/score", "red1", json=body), 422
    )
    problem(
        await world.call(
            "POST", "/api/tournaments", "host", json={"name": "X", "organiser_id": "x"}
        ),
        422,
    )


async def test_the_leaderboard_agrees_with_its_cache_its_etag_and_the_push(world: World) -> None:
    tid, match_id = world.tournament_id, world.matches[0]
    pushed = []
    tourney = world.app.state.tenfold.get(Tourney)
    real_publish = tourney.publish

    async def capture(channel, data):
        pushed.append((channel, data))
        await real_publish(channel, data)

    tourney.publish = capture
    await start(world, match_id)
    await world.ok(
        "POST", f"/api/matches/{match_id}/score", "red1", json={"home": 2, "away": 0, "version": 1}
    )
    await world.ok("POST", f"/api/matches/{match_id}/complete", "host")
    response = await world.call("GET", f"/api/tournaments/{tid}/leaderboard")
    board = response.json()
    assert board["rows"][0]["team"] == "Red"
    assert board["rows"][0]["points"] == 3
    assert (board["rows"][-1]["team"], board["rows"][-1]["losses"]) == ("Blue", 1)
    channel, last = pushed[-1]
    assert channel == f"tournament:{tid}"
    assert last["leaderboard"] == board
    assert last["match"]["status"] == "completed"
    projected = await tourney.load_leaderboard(tid)
    assert projected == board
    etag = response.headers["etag"]
    again = await world.call(
        "GET", f"/api/tournaments/{tid}/leaderboard", headers={"If-None-Match": etag}
    )
    assert again.status_code == 304


async def test_only_a_completion_changes_the_cached_leaderboard(world: World) -> None:
    """A score update pushes the match alone and the cached leaderboard is served as it
    was (it cannot have changed); a completion reloads it once and pushes it."""
    tid, match_id = world.tournament_id, world.matches[0]
    tourney = world.app.state.tenfold.get(Tourney)
    pushed, loads = [], []
    real_publish, real_load = tourney.publish, tourney.load_leaderboard

    async def capture(channel, data):
        pushed.append(data)
        await real_publish(channel, data)

    async def load(tournament_id):
        loads.append(tournament_id)
        return await real_load(tournament_id)

    tourney.publish, tourney.load_leaderboard = capture, load
    await world.ok("GET", f"/api/tournaments/{tid}/leaderboard")
    assert loads == [tid]
    live = await start(world, match_id)
    for home in (1, 2, 3):
        body = {"home": home, "away": 0, "version": live["version"]}
        live = await world.ok("POST", f"/api/matches/{match_id}/score", "red1", json=body)
        assert live["home_score"] == home
    await world.ok("GET", f"/api/tournaments/{tid}/leaderboard")
    assert loads == [tid]  # four writes, no reload
    assert [("leaderboard" in p, p["match"]["version"]) for p in pushed] == [
        (False, 1),
        (False, 2),
        (False, 3),
        (False, 4),
    ]
    done = await world.ok("POST", f"/api/matches/{match_id}/complete", "host")
    assert loads == [tid, tid]
    assert (pushed[-1]["match"], pushed[-1]["leaderboard"]["completed"]) == (done, 1)
    board = await world.ok("GET", f"/api/tournaments/{tid}/leaderboard")
    assert loads == [tid, tid]
    assert board == pushed[-1]["leaderboard"]


async def test_1000_random_results_give_the_recomputed_leaderboard(world: World) -> None:
    """The projection, applying 1,000 random score events one at a time from the log,
    equals the leaderboard recomputed from scratch. The matches are played through the
    aggregate and saved a match at a time; the projection then catches up once."""
    platform = world.app.state.tenfold
    tourney, aggregates = platform.get(Tourney), platform.get(Aggregates)
    host = Principal(world.users["host"], roles=["host"])
    rng = random.Random(7)
    tid = world.tournament_id
    names = dict(zip(world.teams, ("Red", "Blue", "Green"), strict=True))
    for n in range(3):
        made = await tourney.add_team(tid, f"T{n}", host)
        names[made["id"]] = made["name"]
    ids = list(names)
    completed, events, last = [], 0, None
    while events < 1000:
        home, away = rng.sample(ids, 2)
        fixture = await tourney.schedule(tid, world.game_id, home, away, 1_900_000_000.0, host)
        match = Match(stream_of(fixture["id"]))
        match.start(tid, home, away, host.id)
        score = [0, 0]
        for _ in range(rng.randint(1, 8)):
            score[rng.randint(0, 1)] += 1
            match.report(score[0], score[1], seen_version=match.version, by=host.id)
        match.complete(host.id)
        events += len(match.pending)
        last = await aggregates.save(match)
        completed.append((home, away, score[0], score[1]))
    assert last is not None
    for name in (MATCH_STATE, STANDINGS):
        await platform.get(Projections).wait_for(name, last.position, timeout=60)
    expected = [s.to_dict() for s in standings(names, completed)]
    board = await tourney.load_leaderboard(tid)
    assert board is not None
    assert board["rows"] == expected
    assert board["completed"] == len(completed)
