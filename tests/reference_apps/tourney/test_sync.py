"""Offline sync: a batch applied once, replays changing nothing, conflicts per action."""

from __future__ import annotations

from tests.reference_apps.tourney.conftest import World


async def test_a_batch_replayed_changes_nothing_and_conflicts_are_per_action(world: World) -> None:
    red_blue, blue_green = world.matches[0], world.matches[1]
    for match_id in (red_blue, blue_green):
        await world.ok("POST", f"/api/matches/{match_id}/start", "host")
    batch = {
        "actions": [
            {
                "id": "a1",
                "type": "report_score",
                "match_id": red_blue,
                "home": 1,
                "away": 0,
                "version": 1,
            },
            # made on the same version as a1: by the time it is applied, a1 moved the match
            {
                "id": "a2",
                "type": "report_score",
                "match_id": red_blue,
                "home": 0,
                "away": 1,
                "version": 1,
            },
            # not red1's match
            {
                "id": "a3",
                "type": "report_score",
                "match_id": blue_green,
                "home": 2,
                "away": 0,
                "version": 1,
            },
        ]
    }
    first = await world.ok("POST", "/api/sync", "red1", json=batch)
    statuses = [(r["id"], r["status"]) for r in first["results"]]
    assert statuses == [("a1", "applied"), ("a2", "conflict"), ("a3", "refused")]
    conflict = first["results"][1]
    assert (conflict["match"]["home_score"], conflict["match"]["version"]) == (1, 2)
    state = await world.ok("GET", f"/api/matches/{red_blue}")
    again = await world.ok("POST", "/api/sync", "red1", json=batch)
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 3
    assert [r["match"] for r in again["results"]] == [r["match"] for r in first["results"]]
    assert await world.ok("GET", f"/api/matches/{red_blue}") == state
    # Another user's ids are their own.
    other = {"actions": [dict(batch["actions"][0], version=2, home=2)]}
    theirs = await world.ok("POST", "/api/sync", "blue1", json=other)
    assert theirs["results"][0]["status"] == "applied"


async def test_sync_needs_a_login_and_a_well_formed_batch(world: World) -> None:
    action = {"id": "x", "type": "report_score", "match_id": 1, "home": 1, "away": 0, "version": 1}
    assert (await world.call("POST", "/api/sync", json={"actions": [action]})).status_code == 401
    bad = {"actions": [dict(action, id="../x")]}
    assert (await world.call("POST", "/api/sync", "red1", json=bad)).status_code == 422
    assert (await world.call("POST", "/api/sync", "red1", json={"actions": []})).status_code == 422
