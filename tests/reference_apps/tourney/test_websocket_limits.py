"""The plan's WebSocket limits on Tourney: 5 connections per address, 100 frames a minute.

They are the realtime endpoint's own settings, given the presets' values
(``apps/tourney/presets.py``) unless ``TENFOLD_REALTIME__*`` sets them.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, suppress
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from apps.tourney.main import make_app
from apps.tourney.presets import WS_CONNECTIONS_PER_IP, WS_MESSAGES_PER_MINUTE
from tenfold import CoreSettings, Settings, platform_of
from tenfold.realtime import Realtime, RealtimeSettings
from tenfold.testing import serve_asgi
from tests.realtime.conftest import close_code, peer

CONNECTIONS = "TENFOLD_REALTIME__MAX_CONNECTIONS_PER_IP"
MESSAGES = "TENFOLD_REALTIME__MESSAGES_PER_MINUTE"


@pytest.fixture(autouse=True)
def tourney_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tourney's database in the test's directory; no WebSocket limit set by the environment."""
    monkeypatch.setenv("TENFOLD_DB__URL", f"sqlite+aiosqlite:///{tmp_path}/tourney.db")
    monkeypatch.setenv("TENFOLD_APP__NAME", "tourney")
    monkeypatch.delenv(CONNECTIONS, raising=False)
    monkeypatch.delenv(MESSAGES, raising=False)


def limits(app: object) -> tuple[int, int]:
    """The connections per address and frames per minute the app's endpoint enforces."""
    realtime = platform_of(app).get(Realtime)
    settings = realtime.settings
    cap = realtime.connection_limiter.cap if realtime.connection_limiter is not None else 0
    assert cap == settings.max_connections_per_ip
    return settings.max_connections_per_ip, settings.messages_per_minute


def test_the_presets_are_the_plans() -> None:
    """5 connections per address and 100 frames a minute, fewer than the platform's defaults."""
    assert (WS_CONNECTIONS_PER_IP, WS_MESSAGES_PER_MINUTE) == (5, 100)
    defaults = RealtimeSettings()
    assert defaults.max_connections_per_ip > WS_CONNECTIONS_PER_IP
    assert defaults.messages_per_minute > WS_MESSAGES_PER_MINUTE


def test_the_app_runs_with_the_plans_limits() -> None:
    """Built from the environment, the realtime endpoint has the presets' limits."""
    assert limits(make_app()) == (5, 100)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        # The platform's defaults, set explicitly: chosen, so they win over the presets.
        ({CONNECTIONS: "50"}, (50, 100)),
        ({MESSAGES: "600"}, (5, 600)),
        ({CONNECTIONS: "0", MESSAGES: "0"}, (0, 0)),
        ({CONNECTIONS: "12", MESSAGES: "30"}, (12, 30)),
    ],
)
def test_the_operators_values_win(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: tuple[int, int]
) -> None:
    """A limit set in TENFOLD_REALTIME__* wins, even at the platform's default value; the
    other keeps the preset."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert limits(make_app()) == expected


def test_settings_handed_to_the_app_get_the_presets_where_they_set_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings without a realtime section get it from the environment with the presets
    applied; a section that sets a limit keeps it."""
    database = {"url": f"sqlite+aiosqlite:///{tmp_path}/given.db"}
    assert limits(make_app(Settings.load(db=database))) == (5, 100)
    monkeypatch.setenv(MESSAGES, "40")
    assert limits(make_app(Settings.load(db=database))) == (5, 40)
    monkeypatch.delenv(MESSAGES)
    composed = CoreSettings.compose([*Settings.sections.items(), ("realtime", RealtimeSettings)])
    given = composed.load(db=database, realtime={"max_connections_per_ip": 7})
    assert limits(make_app(given)) == (7, 100)


async def test_the_sixth_connection_from_one_address_is_refused() -> None:
    """With 5 connections open from 127.0.0.1 the 6th is closed with 1008; the 5 stay open."""
    async with serve_asgi(make_app()) as base, AsyncExitStack() as stack:
        url = base.replace("http://", "ws://") + "/realtime"
        clients = [await stack.enter_async_context(peer(url)) for _ in range(5)]
        for client in clients:
            assert (await client.request("ping"))["result"] == {}
        async with peer(url) as sixth:
            assert await close_code(sixth.ws) == 1008
        for client in clients:
            assert (await client.request("ping"))["result"] == {}


async def answered_until_closed(ws: ClientConnection) -> tuple[int, int | None]:
    """The pings answered before the server closed ``ws``, and the close code it sent."""
    answered = 0
    try:
        async with asyncio.timeout(10):
            while True:
                answered += orjson.loads(await ws.recv()).get("result") == {}
    except ConnectionClosed as exc:
        return answered, exc.rcvd.code if exc.rcvd is not None else None


async def test_a_connection_sending_over_100_frames_a_minute_is_closed() -> None:
    """150 pings sent at once: about 100 are answered, then the connection is closed (4003)."""
    async with serve_asgi(make_app()) as base:
        url = base.replace("http://", "ws://") + "/realtime"
        async with peer(url) as client:
            with suppress(ConnectionClosed):  # closed before the last was sent
                for n in range(1, 151):
                    await client.ws.send(orjson.dumps({"id": n, "ping": {}}).decode())
            answered, code = await answered_until_closed(client.ws)
    assert code == 4003
    # 100 at once, then one more every 0.6 s: a few more if sending took that long.
    assert 100 <= answered < 150
