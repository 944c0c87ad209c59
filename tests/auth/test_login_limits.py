"""Login limits against brute force: per account, per client address, fail closed.

The client here connects from an address that is not in
``TENFOLD_HTTP__TRUSTED_PROXIES``, so the ``X-Forwarded-For`` it sends is its own
invention: rotating it must not buy fresh attempts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tenfold.testing import RedisServer

from ._app import PASSWORD, PEER, merged, problem, redis_sections, running, settings


@pytest.fixture(params=["memory", "redis", "redis-lease"])
def limiter(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The limiter's sections: in memory, on the harness Redis, or leasing from Redis."""
    if request.param == "memory":
        return {"ratelimit": {"backend": "memory"}}
    server: RedisServer = request.getfixturevalue("redis_server")
    mode = "lease" if request.param == "redis-lease" else "exact"
    return redis_sections(server.url, mode=mode)


async def attempt(
    client: httpx.AsyncClient,
    username: str,
    password: str,
    forwarded_for: str | None = None,
    path: str = "/auth/token",
) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    body = {"username": username, "password": password}
    return await client.post(path, json=body, headers=headers)


def limited(response: httpx.Response) -> None:
    """A 429 problem with Retry-After, and no token in it."""
    body = problem(response, 429)
    assert body["type"].endswith("rate-limited")
    assert int(response.headers["retry-after"]) >= 1
    assert "access_token" not in body
    assert "set-cookie" not in response.headers


async def test_rotating_forwarded_for_still_hits_the_account_limit(
    tmp_path: Path, limiter: dict[str, Any]
) -> None:
    """Three wrong passwords for ann, each "from" another forwarded address: the fourth
    attempt is a 429 even with the right password, by token or browser session, in any
    spelling of the username; bob, from the same client, is not locked out."""
    auth = {"auth": {"login_limit": "3/minute", "login_limit_per_ip": "100/minute"}}
    async with running(settings(tmp_path, **merged(limiter, auth))) as kit:
        for i in range(3):
            problem(await attempt(kit.client, "ann", "wrong", f"198.51.100.{i}"), 401)
        limited(await attempt(kit.client, "ann", PASSWORD, "198.51.100.77"))
        limited(await attempt(kit.client, "ann", PASSWORD, "198.51.100.78", "/auth/session"))
        limited(await attempt(kit.client, "ANN", PASSWORD))
        async with kit.from_peer("198.51.100.200") as elsewhere:  # a real other address
            limited(await attempt(elsewhere, "ann", PASSWORD))
        assert (await attempt(kit.client, "bob", PASSWORD, "198.51.100.1")).status_code == 200


async def test_rotating_forwarded_for_still_hits_the_address_limit(
    tmp_path: Path, limiter: dict[str, Any]
) -> None:
    """Many usernames from one untrusted client, each with another forwarded address, spend
    one per-address budget; another client, or another client behind a trusted proxy, has
    its own."""
    auth = {"auth": {"login_limit": "5/minute", "login_limit_per_ip": "4/minute"}}
    async with running(settings(tmp_path, **merged(limiter, auth))) as kit:
        for i in range(4):
            problem(await attempt(kit.client, f"guess{i}", "wrong", f"192.0.2.{i}"), 401)
        limited(await attempt(kit.client, "ann", PASSWORD, "192.0.2.99"))
        limited(await attempt(kit.client, "bob", PASSWORD))
        async with kit.from_peer("10.0.0.5") as proxy:  # trusted: its X-Forwarded-For counts
            limited(await attempt(proxy, "ann", PASSWORD, PEER))  # that same client
            assert (await attempt(proxy, "ann", PASSWORD, "192.0.2.200")).status_code == 200
        async with kit.from_peer("198.51.100.200") as elsewhere:
            assert (await attempt(elsewhere, "bob", PASSWORD)).status_code == 200


@pytest.mark.parametrize("mode", ["exact", "lease"])
async def test_login_fails_closed_when_the_limiter_is_down(
    tmp_path: Path, redis_server: RedisServer, mode: str
) -> None:
    """With the limiter's Redis stopped nobody logs in, right password or not (503); a
    token issued before keeps working, since only logins ask the limiter."""
    async with running(settings(tmp_path, **redis_sections(redis_server.url, mode=mode))) as kit:
        before = await kit.login("ann")
        redis_server.stop()
        try:
            for path in ("/auth/token", "/auth/session"):
                for name in ("ann", "bob"):
                    refused = await attempt(kit.client, name, PASSWORD, path=path)
                    body = problem(refused, 503)
                    assert body["type"].endswith("rate-limiter-unavailable")
                    assert "retry-after" in refused.headers
                    assert "access_token" not in refused.text
                    assert "set-cookie" not in refused.headers
            problem(await attempt(kit.client, "ann", "wrong"), 503)
            me = await kit.client.get("/auth/me", headers=before)
            assert me.status_code == 200
            assert me.json()["id"] == kit.id("ann")
        finally:
            redis_server.start()
