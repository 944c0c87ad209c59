"""Tourney's page in a real browser (Debian's chromium driven by Playwright).

A viewer on a laptop watches; a player on a phone logs in and reports a score: the
viewer's page shows it without a reload. Then the phone goes offline, reports again
(queued), comes back: the report is applied once. Screenshots of each step are saved
under the test's ``tmp_path`` (and copied to ``$TENFOLD_TEST_ARTIFACTS`` or
``var/test-artifacts/`` when that exists).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.async_api import Browser, Page, async_playwright, expect

from apps.tourney.main import make_app
from apps.tourney.schema import sync_actions
from tenfold.auth import Users
from tenfold.db import Database
from tenfold.testing import serve_asgi
from tests.reference_apps.tourney.conftest import PASSWORD, World

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("TENFOLD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=15_000)


def _chromium() -> str:
    """The browser's path; missing, the test is skipped, except under CI=true (failed)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = f"no chromium at {CHROMIUM} (scripts/ensure-servers.sh installs it)"
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true and a browser is missing: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    """Tourney on a loopback port, with a host's tournament (Red, Blue, Green), players
    red1 and blue1, Red v Blue live and Blue v Green scheduled; ``world.client`` is an
    HTTP client on the served URL."""
    for name, value in {
        "TENFOLD_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/tourney.db",
        "TENFOLD_APP__NAME": "tourney",
        "TENFOLD_AUTH__PASSWORD_TIME_COST": "1",
        "TENFOLD_AUTH__PASSWORD_MEMORY_COST": "8",
        "TENFOLD_AUTH__PASSWORD_PARALLELISM": "1",
    }.items():
        monkeypatch.setenv(name, value)
    app = make_app()
    async with serve_asgi(app) as base, httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        users = app.state.tenfold.get(Users)
        ids = {}
        for name, roles in {"host": ["host"], "red1": ["player"], "blue1": ["player"]}.items():
            ids[name] = (await users.create(name, PASSWORD, roles=roles)).id
        headers = {}
        for name in ids:
            token = await client.post("/auth/token", json={"username": name, "password": PASSWORD})
            assert token.status_code == 200, token.text
            headers[name] = {"Authorization": f"Bearer {token.json()['access_token']}"}
        world = World(app, client, headers, users=ids)
        tid = world.tournament_id = (
            await world.ok("POST", "/api/tournaments", "host", json={"name": "Beer Olympics"})
        )["id"]
        for team in ("Red", "Blue", "Green"):
            made = await world.ok(
                "POST", f"/api/tournaments/{tid}/teams", "host", json={"name": team}
            )
            world.teams.append(made["id"])
        red, blue, green = world.teams
        for user, team in (("red1", red), ("blue1", blue)):
            await world.ok(
                "POST",
                f"/api/tournaments/{tid}/players",
                "host",
                json={"team_id": team, "user_id": ids[user]},
            )
        world.game_id = (
            await world.ok("POST", f"/api/tournaments/{tid}/games", "host", json={"name": "Pong"})
        )["id"]
        for n, (home, away) in enumerate([(red, blue), (blue, green)]):
            made = await world.ok(
                "POST",
                f"/api/tournaments/{tid}/matches",
                "host",
                json={
                    "game_id": world.game_id,
                    "home_team_id": home,
                    "away_team_id": away,
                    "scheduled_at": 1_800_000_000 + n * 600,
                },
            )
            world.matches.append(made["id"])
        await world.ok("POST", f"/api/matches/{world.matches[0]}/start", "host")
        yield world


class Shots:
    """Screenshots of the steps, under ``tmp_path``; copied to the CI artifacts if any."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "screenshots"
        self.dir.mkdir()
        self.taken: list[Path] = []

    async def take(self, page: Page, name: str) -> None:
        path = self.dir / f"{len(self.taken) + 1:02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)

    def publish(self) -> None:
        target = os.environ.get("TENFOLD_TEST_ARTIFACTS")
        artifacts = Path(target) if target else REPO / "var" / "test-artifacts"
        if target or artifacts.is_dir():
            destination = artifacts / "tourney-browser" / self.dir.parent.name
            shutil.copytree(self.dir, destination, dirs_exist_ok=True)
            print(f"screenshots: {self.dir} (copied to {destination})")
        else:
            print(f"screenshots: {self.dir}")


def _watch(page: Page, problems: list[str]) -> None:
    """Uncaught script errors and CSP violations end up in ``problems``."""
    page.on("pageerror", lambda exc: problems.append(f"{page.url}: {exc}"))

    def console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            problems.append(f"{page.url}: {message.text}")

    page.on("console", console)


async def _server_match(world: World, match_id: int) -> tuple[int, int, int]:
    match = await world.ok("GET", f"/api/matches/{match_id}")
    return match["home_score"], match["away_score"], match["version"]


async def _synced(world: World, user: str) -> int:
    async with world.app.state.tenfold.get(Database).session() as session:
        found = await session.execute(
            sa.select(sa.func.count())
            .select_from(sync_actions)
            .where(sync_actions.c.user_id == world.users[user])
        )
        return int(found.scalar_one())


async def _launch(playwright: Any) -> Browser:
    return await playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)


async def test_live_scores_and_an_offline_report_applied_once(
    served: World, tmp_path: Path
) -> None:
    world = served
    tid = world.tournament_id
    red = world.teams[0]
    live_match, next_match = world.matches
    base = str(world.client.base_url).rstrip("/")
    shots = Shots(tmp_path)
    problems: list[str] = []
    synced_bodies: list[Any] = []
    async with async_playwright() as playwright:
        browser = await _launch(playwright)
        try:
            laptop = await browser.new_context(viewport=LAPTOP)
            phone = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
            viewer, player = await laptop.new_page(), await phone.new_page()
            for page in (viewer, player):
                _watch(page, problems)
            player.on(
                "request",
                lambda r: (
                    synced_bodies.append(r.post_data_json) if r.url.endswith("/api/sync") else None
                ),
            )

            # The viewer watches the tournament, not logged in.
            response = await viewer.goto(f"{base}/?t={tid}")
            assert response is not None
            assert response.status == 200
            assert "script-src 'self'" in response.headers["content-security-policy"]
            await expect(viewer.locator("#conn")).to_have_attribute("data-state", "connected")
            await expect(viewer.locator(f"#live #match-{live_match} .home-score")).to_have_text("0")
            await expect(viewer.locator(f"#upcoming #match-{next_match}")).to_be_visible()
            await expect(viewer.locator(f"#match-{live_match} button")).to_have_count(0)
            await viewer.evaluate("window.__sameDocument = true")

            # The player logs in on the phone (the first tournament is the default).
            await player.goto(f"{base}/")
            await player.fill("#login input[name=username]", "red1")
            await player.fill("#login input[name=password]", PASSWORD)
            await player.click("#login button[type=submit]")
            await expect(player.locator("#me-name")).to_contain_text("red1")
            await expect(player.locator("#conn")).to_have_attribute("data-state", "connected")
            await expect(player.locator(f"#match-{next_match} button")).to_have_count(0)
            await shots.take(player, "phone-logged-in")

            # A report through the page reaches the viewer without a reload.
            await player.click(f'#match-{live_match} button[data-act="home-inc"]')
            await expect(player.locator(f"#match-{live_match} .home-score")).to_have_text("1")
            await expect(viewer.locator(f"#match-{live_match} .home-score")).to_have_text("1")
            assert await _server_match(world, live_match) == (1, 0, 2)
            await shots.take(viewer, "laptop-live-score")

            # Offline: the report is queued, not sent.
            await phone.set_offline(True)
            await expect(player.locator("#conn")).to_have_attribute("data-state", "offline")
            await player.click(f'#match-{live_match} button[data-act="home-inc"]')
            await expect(player.locator("#queued")).to_have_attribute("data-count", "1")
            await expect(player.locator(f"#match-{live_match} .home-score")).to_have_text("2")
            await expect(player.locator(f"#match-{live_match} .badge")).to_have_text("queued")
            await shots.take(player, "phone-offline-queued")
            assert await _server_match(world, live_match) == (1, 0, 2)
            assert synced_bodies == []

            # Back online: the queue is sent with /api/sync and empties; applied once.
            await phone.set_offline(False)
            await expect(player.locator("#queued")).to_have_attribute("data-count", "0")
            await expect(player.locator(f"#match-{live_match} .badge")).to_have_count(0)
            await expect(viewer.locator(f"#match-{live_match} .home-score")).to_have_text("2")
            assert await _server_match(world, live_match) == (2, 0, 3)
            assert await _synced(world, "red1") == 1
            assert await player.evaluate("localStorage.length") == 1  # the user, no queue

            # The same batch delivered again (an answer lost on the way) changes nothing.
            assert len(synced_bodies) == 1
            [action] = synced_bodies[0]["actions"]
            assert (action["type"], action["home"], action["version"]) == ("report_score", 2, 2)
            again = await world.ok("POST", "/api/sync", "red1", json=synced_bodies[0])
            assert [r["status"] for r in again["results"]] == ["duplicate"]
            assert await _server_match(world, live_match) == (2, 0, 3)

            # The organiser completes the match: the viewer's leaderboard follows.
            await world.ok("POST", f"/api/matches/{live_match}/complete", "host")
            row = viewer.locator(f'#leaderboard tr[data-team="{red}"]')
            await expect(row.locator(".points")).to_have_text("3")
            await expect(row.locator(".rank")).to_have_text("1")
            await expect(viewer.locator("#completed")).to_have_text("1 completed")
            await expect(viewer.locator(f"#results #match-{live_match}")).to_be_visible()
            await expect(player.locator(f"#match-{live_match} button")).to_have_count(0)
            assert await viewer.evaluate("window.__sameDocument") is True  # never reloaded
            await shots.take(viewer, "laptop-leaderboard")
            await shots.take(player, "phone-leaderboard")
        finally:
            await browser.close()
            shots.publish()
    assert problems == []


async def test_the_organiser_runs_a_match_and_a_stale_offline_report_conflicts(
    served: World, tmp_path: Path
) -> None:
    world = served
    tid = world.tournament_id
    next_match = world.matches[1]  # Blue v Green, scheduled
    base = str(world.client.base_url).rstrip("/")
    shots = Shots(tmp_path)
    problems: list[str] = []
    card = f"#match-{next_match}"
    async with async_playwright() as playwright:
        browser = await _launch(playwright)
        try:
            laptop = await browser.new_context(viewport=LAPTOP)
            phone = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
            host, player = await laptop.new_page(), await phone.new_page()
            for page, user in ((host, "host"), (player, "blue1")):
                _watch(page, problems)
                await page.goto(f"{base}/?t={tid}")
                await page.fill("#login input[name=username]", user)
                await page.fill("#login input[name=password]", PASSWORD)
                await page.click("#login button[type=submit]")
                await expect(page.locator("#me-name")).to_contain_text(user)
                await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
            await expect(host.locator("#me-name")).to_contain_text("organiser")
            await expect(player.locator(f"{card} button[data-act=start]")).to_have_count(0)

            # The organiser starts the match from the page: both pages list it as live.
            await host.click(f"{card} button[data-act=start]")
            await expect(player.locator(f"#live {card}")).to_have_attribute("data-version", "1")
            await expect(player.locator(f'{card} button[data-act="home-inc"]')).to_be_enabled()

            # The player reports offline on version 1; meanwhile the organiser reports.
            await phone.set_offline(True)
            await expect(player.locator("#conn")).to_have_attribute("data-state", "offline")
            await player.click(f'{card} button[data-act="home-inc"]')
            await expect(player.locator("#queued")).to_have_attribute("data-count", "1")
            await host.click(f'{card} button[data-act="away-inc"]')
            await expect(host.locator(f"{card} .away-score")).to_have_text("1")
            assert await _server_match(world, next_match) == (0, 1, 2)

            # Back online: the queued report is a conflict, shown with the current score.
            await phone.set_offline(False)
            await expect(player.locator("#queued")).to_have_attribute("data-count", "0")
            await expect(player.locator(f"{card} .note")).to_contain_text("not saved")
            await expect(player.locator(f"{card} .home-score")).to_have_text("0")
            await expect(player.locator(f"{card} .away-score")).to_have_text("1")
            await shots.take(player, "phone-conflict")
            assert await _server_match(world, next_match) == (0, 1, 2)

            # The organiser completes it: the result is final on both pages.
            await host.click(f"{card} button[data-act=complete]")
            await expect(player.locator(f"#results {card}")).to_be_visible()
            await expect(player.locator(f"{card} button")).to_have_count(0)
            await shots.take(host, "laptop-organiser")
        finally:
            await browser.close()
            shots.publish()
    assert problems == []
