"""The kernel's per-user guarantees with the real authenticator in the slot.

The rate limiter's ``by_user`` key (``TENFOLD_RATELIMIT__KEY=user``), the HTTP
cache's ``per_user`` entries and the idempotency scope were checked with a toy
``authenticate=`` resolver (tests/web/test_authentication.py, tests/ratelimit,
tests/httpcache). Here the principal comes from ``AuthExtension``: access tokens
from ``POST /auth/token``, API keys, anonymous callers.

What an API key counts as: its principal's ``id`` is the key's *owner*, so
``by_user`` puts a user's API-key calls in the same budget as their bearer-token
calls (one user, one budget however they authenticate), and so do the
idempotency scope and the per-user cache key. ``TENFOLD_RATELIMIT__KEY=api_key``
gives each key its own budget instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tenfold.testing import RedisServer

from ._app import PEER, merged, problem, redis_sections, running, settings

#: The prefix policy these tests limit: 3 a minute, keyed on the user.
LIMITED = {"ratelimit": {"prefixes": {"/limited": "3/minute"}, "key": "user"}}


@pytest.fixture(params=["memory", "redis", "redis-lease"])
def limiter(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The limiter's sections: in memory, on the harness Redis, or leasing from Redis."""
    if request.param == "memory":
        return {"ratelimit": {"backend": "memory"}}
    server: RedisServer = request.getfixturevalue("redis_server")
    mode = "lease" if request.param == "redis-lease" else "exact"
    return redis_sections(server.url, mode=mode)


async def ping(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.get("/limited/ping", headers=headers or {})


def remaining(response: httpx.Response) -> str:
    return response.headers["ratelimit-remaining"]


async def test_each_user_has_a_budget_of_their_own(tmp_path: Path, limiter: dict[str, Any]) -> None:
    """Two users behind one address: ann spent to a 429 leaves bob's budget whole."""
    async with running(settings(tmp_path, **merged(limiter, LIMITED))) as kit:
        ann, bob = await kit.login("ann"), await kit.login("bob")
        seen = [await ping(kit.client, ann) for _ in range(4)]
        assert [r.status_code for r in seen] == [200, 200, 200, 429]
        assert [remaining(r) for r in seen[:3]] == ["2", "1", "0"]
        assert seen[0].json() == {"user": kit.id("ann"), "kind": "user"}
        refused = problem(seen[3], 429)
        assert refused["type"].endswith("rate-limited")
        assert int(seen[3].headers["retry-after"]) >= 1
        bob_first = await ping(kit.client, bob)
        assert bob_first.status_code == 200
        assert remaining(bob_first) == "2"
        assert bob_first.json() == {"user": kit.id("bob"), "kind": "user"}
        # A fresh token of ann's is the same user: still limited.
        assert (await ping(kit.client, kit.bearer("ann"))).status_code == 429
        assert remaining(await ping(kit.client, bob)) == "1"


async def test_anonymous_requests_count_per_address_not_with_a_user(
    tmp_path: Path, limiter: dict[str, Any]
) -> None:
    """Anonymous callers are keyed on their address: never merged into a user's budget,
    one budget per address, and a forwarded address from an untrusted peer changes nothing."""
    async with running(settings(tmp_path, **merged(limiter, LIMITED))) as kit:
        anonymous = [await ping(kit.client) for _ in range(3)]
        assert [remaining(r) for r in anonymous] == ["2", "1", "0"]
        assert anonymous[0].json() == {"user": None, "kind": None}
        assert (await ping(kit.client)).status_code == 429
        spoofed = await ping(kit.client, {"X-Forwarded-For": "198.51.100.9"})
        assert spoofed.status_code == 429
        ann = await ping(kit.client, kit.bearer("ann"))  # same address, signed in
        assert ann.status_code == 200
        assert remaining(ann) == "2"
        async with kit.from_peer("198.51.100.20") as elsewhere:
            other = await ping(elsewhere)
            assert other.status_code == 200
            assert remaining(other) == "2"
            # ann from another address is still ann: her budget follows her.
            assert remaining(await ping(elsewhere, kit.bearer("ann"))) == "1"
        # Behind a trusted proxy each forwarded client is an address of its own.
        async with kit.from_peer("10.0.0.5") as proxy:
            forwarded = await ping(proxy, {"X-Forwarded-For": PEER})
            assert forwarded.status_code == 429  # the same client as kit.client
            fresh = await ping(proxy, {"X-Forwarded-For": "198.51.100.30"})
            assert remaining(fresh) == "2"


async def test_an_api_key_counts_against_its_owner(tmp_path: Path, limiter: dict[str, Any]) -> None:
    """``by_user`` keys on the principal's id, which for an API key is its owner: a key and
    its owner's tokens share one budget, however the key is sent; others are untouched."""
    async with running(settings(tmp_path, **merged(limiter, LIMITED))) as kit:
        key = await kit.api_key("ann", ["notes:read"])
        by_token = await ping(kit.client, kit.bearer("ann"))
        assert remaining(by_token) == "2"
        by_header = await ping(kit.client, {"X-API-Key": key})
        assert by_header.json() == {"user": kit.id("ann"), "kind": "api_key"}
        assert remaining(by_header) == "1"
        by_bearer = await ping(kit.client, {"Authorization": f"Bearer {key}"})
        assert by_bearer.json()["kind"] == "api_key"
        assert remaining(by_bearer) == "0"
        assert (await ping(kit.client, kit.bearer("ann"))).status_code == 429
        assert (await ping(kit.client, {"X-API-Key": key})).status_code == 429
        assert remaining(await ping(kit.client, kit.bearer("bob"))) == "2"
        assert remaining(await ping(kit.client)) == "2"  # the address's own budget


async def test_key_api_key_gives_each_key_a_budget(tmp_path: Path) -> None:
    """With TENFOLD_RATELIMIT__KEY=api_key two keys of one owner count apart."""
    limits = {"ratelimit": {"prefixes": {"/limited": "2/minute"}, "key": "api_key"}}
    async with running(settings(tmp_path, **limits)) as kit:
        first, second = await kit.api_key("ann", []), await kit.api_key("ann", [])
        assert [(await ping(kit.client, {"X-API-Key": first})).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert remaining(await ping(kit.client, {"X-API-Key": second})) == "1"


async def test_per_user_cache_never_serves_one_user_anothers_body(
    tmp_path: Path, limiter: dict[str, Any]
) -> None:
    """A per-user cached GET: each user gets their own body, even when the other warmed the
    route first; each user's own entry is reused; Cache-Control stays private."""
    async with running(settings(tmp_path, **limiter)) as kit:
        ann, bob = await kit.login("ann"), await kit.login("bob")
        bob_warm = await kit.client.get("/me", headers=bob)
        assert bob_warm.json()["user"] == kit.id("bob")
        ann_first = await kit.client.get("/me", headers=ann)
        assert ann_first.json()["user"] == kit.id("ann")
        assert ann_first.json()["run"] != bob_warm.json()["run"]
        ann_again = await kit.client.get("/me", headers=ann)
        assert ann_again.json() == ann_first.json()  # her own entry, reused
        assert "age" in ann_again.headers
        assert (await kit.client.get("/me", headers=bob)).json() == bob_warm.json()
        # The entry belongs to the user, not to the token: a new login finds it.
        assert (await kit.client.get("/me", headers=await kit.login("ann"))).json() == (
            ann_first.json()
        )
        anonymous = await kit.client.get("/me")
        assert anonymous.json()["user"] is None
        assert anonymous.json()["run"] not in (ann_first.json()["run"], bob_warm.json()["run"])
        for response in (bob_warm, ann_first, ann_again, anonymous):
            control = response.headers["cache-control"]
            assert "private" in control
            assert "public" not in control
        # A bad token is a 401, never somebody's cached body.
        forged = await kit.client.get("/me", headers={"Authorization": "Bearer forged"})
        problem(forged, 401)


async def test_a_guarded_per_user_route_is_not_served_to_a_key_without_the_scope(
    tmp_path: Path,
) -> None:
    """ann's cached body of a route needing ``reports:read`` is not served to ann's API key
    that lacks that scope: the key gets the 403 the route's guard gives it."""
    async with running(settings(tmp_path)) as kit:
        ann = kit.bearer("ann")
        warmed = await kit.client.get("/reports", headers=ann)
        assert warmed.status_code == 200
        assert (await kit.client.get("/reports", headers=ann)).json() == warmed.json()
        narrow = await kit.api_key("ann", ["notes:read"])
        refused = await kit.client.get("/reports", headers={"X-API-Key": narrow})
        problem(refused, 403)
        assert "quarterly" not in refused.text


async def test_idempotency_keys_are_scoped_per_user(tmp_path: Path) -> None:
    """The same Idempotency-Key from two users is two keys; a retry by the same user
    replays; an API key shares its owner's scope; anonymous callers have none (401)."""
    async with running(settings(tmp_path)) as kit:
        ann, bob = await kit.login("ann"), await kit.login("bob")

        async def send(headers: dict[str, str], text: str = "hi") -> httpx.Response:
            return await kit.client.post(
                "/send", json={"text": text}, headers={"Idempotency-Key": "k1", **headers}
            )

        first = await send(ann)
        assert first.status_code == 202
        assert first.json()["user"] == kit.id("ann")
        retry = await send(ann)
        assert retry.content == first.content
        assert retry.headers["idempotent-replayed"] == "true"
        theirs = await send(bob)
        assert theirs.status_code == 202
        assert "idempotent-replayed" not in theirs.headers
        assert theirs.json()["user"] == kit.id("bob")
        assert theirs.json()["run"] != first.json()["run"]
        key = await kit.api_key("ann", ["notes:write"])
        by_key = await send({"X-API-Key": key})
        assert by_key.headers["idempotent-replayed"] == "true"
        assert by_key.content == first.content
        problem(await send({}), 401)
