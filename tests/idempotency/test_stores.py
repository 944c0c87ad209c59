"""The IdempotencyStore contract, run against MemoryStore and RedisStore, and the dependency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Request

from tenfold import set_principal
from tenfold.idempotency import (
    PROBLEMS,
    IdempotencyConfig,
    IdempotencyKeyInFlight,
    IdempotencyKeyMismatch,
    IdempotencyStore,
    IdempotentRoute,
    MemoryStore,
    RedisStore,
    StoredResponse,
    idempotency_key,
)
from tenfold.testing import ManualClock, RedisServer
from tenfold.web import ProblemRegistry, install_problem_handlers

RESPONSE = StoredResponse(201, (("content-type", "application/json"),), b'{"id":1}')


#: Generous bound: turns a hang into a failure; never a measurement.
BOUND = 10.0

#: Lets every lease and TTL given so far run out, on the store's own clock.
Lapse = Callable[[], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[tuple[IdempotencyStore, Lapse]]:
    """A store and its ``lapse``; on Redis, keys under a prefix only this test uses."""
    if request.param == "memory":
        clock = ManualClock()

        async def advance() -> None:
            clock.advance(24 * 3600.0)

        yield MemoryStore(clock=clock), advance
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    prefix = f"tf:test:{uuid.uuid4().hex}:"

    async def ours() -> list[bytes]:
        return [name async for name in client.scan_iter(match=prefix + "*")]

    async def expire() -> None:
        # Redis expires keys on its own clock, which no test controls: wait until it has.
        async with asyncio.timeout(BOUND):
            while await ours():  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    try:
        yield RedisStore(client, prefix=prefix), expire
    finally:
        names = await ours()
        if names:
            await client.delete(*names)
        await client.aclose()


@pytest.fixture
def store(kit: tuple[IdempotencyStore, Lapse]) -> IdempotencyStore:
    return kit[0]


async def test_new_key_is_reserved(store: IdempotencyStore) -> None:
    """The first reservation of a key returns None: run the handler."""
    assert await store.reserve("s", "k", "fp", 10) is None


async def test_reserved_key_is_in_flight(store: IdempotencyStore) -> None:
    """A second reservation while the first holds the key raises IdempotencyKeyInFlight."""
    await store.reserve("s", "k", "fp", 10)
    with pytest.raises(IdempotencyKeyInFlight):
        await store.reserve("s", "k", "fp", 10)


async def test_completed_key_replays(store: IdempotencyStore) -> None:
    """After complete, a reservation with the same fingerprint returns the stored response."""
    await store.reserve("s", "k", "fp", 10)
    await store.complete("s", "k", "fp", RESPONSE, 60)
    assert await store.reserve("s", "k", "fp", 10) == RESPONSE


async def test_other_fingerprint_is_a_mismatch(store: IdempotencyStore) -> None:
    """A key completed for one fingerprint raises IdempotencyKeyMismatch for another."""
    await store.reserve("s", "k", "fp", 10)
    await store.complete("s", "k", "fp", RESPONSE, 60)
    with pytest.raises(IdempotencyKeyMismatch):
        await store.reserve("s", "k", "other", 10)


async def test_scopes_are_separate(store: IdempotencyStore) -> None:
    """The same key in another scope is a new key."""
    await store.reserve("s", "k", "fp", 10)
    await store.complete("s", "k", "fp", RESPONSE, 60)
    assert await store.reserve("t", "k", "fp", 10) is None


async def test_release_frees_a_reservation_not_a_response(store: IdempotencyStore) -> None:
    """release drops an in-flight reservation but never a completed response."""
    await store.reserve("s", "k", "fp", 10)
    await store.release("s", "k", "fp")
    assert await store.reserve("s", "k", "fp", 10) is None
    await store.complete("s", "k", "fp", RESPONSE, 60)
    await store.release("s", "k", "fp")
    assert await store.reserve("s", "k", "fp", 10) == RESPONSE


async def test_lease_of_a_dead_reservation_expires(
    kit: tuple[IdempotencyStore, Lapse],
) -> None:
    """A reservation nobody completes stops blocking once its lease runs out."""
    store, lapse = kit
    await store.reserve("s", "k", "fp", 0.05)
    await lapse()
    assert await store.reserve("s", "k", "fp", 10) is None


def _app(store: IdempotencyStore) -> tuple[FastAPI, list[int]]:
    calls: list[int] = []
    key = Depends(idempotency_key(store, IdempotencyConfig()), scope="function")
    router = APIRouter(route_class=IdempotentRoute)

    @router.post("/send", status_code=202, dependencies=[key])
    async def send(body: dict[str, str]) -> dict[str, int]:
        calls.append(1)
        return {"call": len(calls)}

    app = FastAPI()
    install_problem_handlers(app, ProblemRegistry(PROBLEMS))
    app.include_router(router)

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        set_principal(request.headers.get("x-user"))
        return await call_next(request)

    return app, calls


async def test_dependency_replays_from_the_store(store: IdempotencyStore) -> None:
    """With idempotency_key(store) a retry replays and the handler runs once per user."""
    app, calls = _app(store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

        async def post(user: str, text: str) -> httpx.Response:
            headers = {"Idempotency-Key": "k", "X-User": user}
            return await client.post("/send", json={"t": text}, headers=headers)

        first = await post("alice", "a")
        again = await post("alice", "a")
        assert (again.status_code, again.content) == (202, first.content)
        assert again.headers["idempotent-replayed"] == "true"
        assert (await post("alice", "b")).status_code == 422
        assert "idempotent-replayed" not in (await post("bob", "a")).headers
        assert (await client.post("/send", json={}, headers={"X-User": "a"})).status_code == 400
    assert len(calls) == 2
