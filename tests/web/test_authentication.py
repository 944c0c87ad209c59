"""The authentication slot, checked over real `tenfold run` processes.

An app that authenticated inside the limiter and the HTTP cache got per-user
limits keyed by address and, worse, one user's cached per-user response served
to another user and to anonymous clients. These run the real server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent
TENFOLD = Path(sys.executable).with_name("tenfold")

Serve = Callable[..., Any]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def served(app: str, tmp_path: Path, **settings: str) -> AsyncIterator[httpx.AsyncClient]:
    """`tenfold run --app auth_app:<app>` on a free loopback port, with TENFOLD_ ``settings``."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENFOLD_", "PYTHONPATH"))}
    env.update(settings)
    env["TENFOLD_PORT"] = str(port)
    env["TENFOLD_DB__URL"] = f"sqlite+aiosqlite:///{tmp_path}/auth.db"
    env["TENFOLD_OBSERVABILITY__ACCESS_LOG"] = "false"
    proc = await asyncio.create_subprocess_exec(
        str(TENFOLD), "run", "--app", f"auth_app:{app}", "--app-dir", str(HERE),
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5.0) as client:
            await _wait_up(client, proc)
            yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)


async def _wait_up(client: httpx.AsyncClient, proc: Any) -> None:
    for _ in range(300):
        if proc.returncode is not None:
            raise AssertionError(f"the server exited: {(await proc.stderr.read()).decode()}")
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise AssertionError("the server never answered")


def _as(key: str | None) -> dict[str, str]:
    return {"X-API-Key": key} if key else {}


async def _per_user_route_never_crosses_users(
    get: Callable[[str, str | None], Awaitable[httpx.Response]],
) -> None:
    first = await get("/me", "alice-key")
    assert first.json()["user"] in ("alice", None)
    alice_body = first.json()
    again = await get("/me", "alice-key")
    assert again.json() == alice_body  # alice's own entry is reused
    assert "age" in again.headers
    bob = await get("/me", "bob-key")
    assert bob.json()["call"] != alice_body["call"]  # bob's handler ran: not alice's body
    anonymous = await get("/me", None)
    assert anonymous.json()["call"] not in (alice_body["call"], bob.json()["call"])
    for response in (first, again, bob, anonymous):
        assert "private" in response.headers["cache-control"]


@pytest.mark.slow
async def test_per_user_cache_is_keyed_on_the_resolved_principal(
    tmp_path: Path, redis_server: Any
) -> None:
    """With authenticate=, a per-user cached body is never served to another user or anonymously."""
    redis_server.flushall()
    async with served("app", tmp_path, TENFOLD_REDIS__URL=redis_server.url) as client:

        async def get(path: str, key: str | None) -> httpx.Response:
            return await client.get(path, headers=_as(key))

        await _per_user_route_never_crosses_users(get)
        alice = await get("/me", "alice-key")
        assert alice.json()["user"] == "alice"
        assert (await get("/me", "bob-key")).json()["user"] == "bob"
        # A shared route: an authenticated request neither reads nor fills the shared entry.
        shared = await get("/news", None)
        assert (await get("/news", None)).json()["call"] == shared.json()["call"]
        mine = await get("/news", "alice-key")
        assert mine.json()["viewer"] == "alice"
        assert mine.json()["call"] != shared.json()["call"]
        assert (await get("/news", None)).json()["viewer"] is None


@pytest.mark.slow
async def test_credential_header_alone_keeps_users_apart(tmp_path: Path) -> None:
    """An app authenticating in its own middleware (no resolver): X-API-Key still keys entries."""
    async with served("app_own_middleware", tmp_path) as client:

        async def get(path: str, key: str | None) -> httpx.Response:
            return await client.get(path, headers=_as(key))

        await _per_user_route_never_crosses_users(get)
        # The shared route is never filled from, nor served to, a request with a credential.
        shared = await get("/news", None)
        mine = await get("/news", "alice-key")
        assert mine.json()["call"] != shared.json()["call"]


@pytest.mark.slow
async def test_rate_limit_by_user_counts_the_principal_not_the_address(
    tmp_path: Path, redis_server: Any
) -> None:
    """TENFOLD_RATELIMIT__KEY=user limits alice without touching bob, from the same address."""
    redis_server.flushall()
    settings = {
        "TENFOLD_REDIS__URL": redis_server.url,
        "TENFOLD_RATELIMIT__DEFAULT": "3/minute",
        "TENFOLD_RATELIMIT__KEY": "user",
    }
    async with served("app", tmp_path, **settings) as client:
        alice = [
            (await client.get("/ping", headers=_as("alice-key"))).status_code for _ in range(4)
        ]
        assert alice == [200, 200, 200, 429]
        bob = await client.get("/ping", headers=_as("bob-key"))
        assert bob.status_code == 200
        assert bob.headers["ratelimit-remaining"] == "2"
        assert bob.json() == {"user": "bob"}
        # Anonymous requests from the same address have a budget of their own.
        assert (await client.get("/ping")).status_code == 200
