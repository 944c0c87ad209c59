"""The page's server side: the HTML, its policy, what it tells each user, its static files."""

from __future__ import annotations

import json
import re
from importlib import resources

from tests.reference_apps.tourney.conftest import World


async def test_the_page_renders_the_state_escaped_under_its_own_policy(world: World) -> None:
    tid = world.tournament_id
    evil = "</script><script>alert(1)</script>"
    await world.ok("POST", f"/api/tournaments/{tid}/teams", "host", json={"name": evil})
    response = await world.call("GET", "/")  # the first tournament by default
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    page = response.text
    assert "<script>alert(1)" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page  # the leaderboard, rendered
    # No inline script: the scripts come from /static, the state is a data block.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert [attrs for attrs, body in scripts if body.strip()] == [
        ' type="application/json" id="tourney-state"'
    ]
    assert all("src=" in attrs for attrs, body in scripts if not body.strip())
    state = json.loads(next(body for attrs, body in scripts if body.strip()))
    assert state["view"]["id"] == tid
    assert evil in [team["name"] for team in state["view"]["teams"]]
    assert state["realtime_path"] == "/realtime"
    assert (state["csrf_cookie"], state["csrf_header"]) == ("tenfold_csrf", "X-CSRF-Token")
    assert (await world.call("GET", "/?t=999999")).status_code == 404


async def test_the_view_says_who_organises_and_who_plays_for_whom(world: World) -> None:
    tid = world.tournament_id
    path = f"/api/tournaments/{tid}"
    await world.ok("POST", f"/api/matches/{world.matches[0]}/start", "host")
    anonymous = await world.ok("GET", path)
    assert (anonymous["you"], anonymous["your_team_id"], anonymous["you_organise"]) == (
        None,
        None,
        False,
    )
    assert [m["id"] for m in anonymous["live"]] == [world.matches[0]]
    assert [m["id"] for m in anonymous["upcoming"]] == world.matches[1:]
    assert anonymous["channel"] == f"tournament:{tid}"
    host = await world.ok("GET", path, "host")
    assert (host["you"], host["you_organise"]) == (world.users["host"], True)
    red = await world.ok("GET", path, "red1")
    assert (red["your_team_id"], red["you_organise"]) == (world.teams[0], False)
    other = await world.ok("GET", path, "other_host")
    assert other["you_organise"] is False
    assert (await world.call("GET", "/api/tournaments/999999")).status_code == 404


async def test_static_files_with_etags(world: World) -> None:
    response = await world.call("GET", "/static/tenfold-realtime.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    client = resources.files("tenfold.realtime").joinpath("static/tenfold-realtime.js")
    assert response.content == client.read_bytes()
    again = await world.call(
        "GET", "/static/tenfold-realtime.js", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
    for name in ("tourney.js", "tourney.css"):
        assert (await world.call("GET", f"/static/{name}")).status_code == 200
    for name in ("nope.js", "..%2Fpage.py", "page.py"):
        assert (await world.call("GET", f"/static/{name}")).status_code == 404
