"""@cached: signature kept, keys from typed arguments, FastAPI dependencies, cache binding."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from tenfold._errors import ConfigurationError
from tenfold.cache._binding import CacheMiddleware, use_cache
from tenfold.cache._cache import Cache
from tenfold.cache._decorator import cached

from .conftest import with_test_namespaces


class Profile(BaseModel):
    id: int
    name: str


@pytest.fixture
async def cache() -> Cache:
    """An embedded (L1-only) cache; the decorator does not care which levels are behind."""
    c = Cache(with_test_namespaces())
    await c.start()
    yield c
    await c.stop()


async def test_signature_and_metadata_are_kept() -> None:
    """inspect.signature, the name and the docstring of the wrapped function are unchanged."""

    async def team(team_id: int, *, season: str = "2026") -> dict[str, int]:
        """The team."""
        return {"id": team_id}

    wrapped = cached(namespace="tournament")(team)
    assert inspect.signature(wrapped) == inspect.signature(team)
    assert wrapped.__name__ == "team"
    assert wrapped.__doc__ == "The team."
    assert wrapped.__wrapped__ is team
    assert inspect.iscoroutinefunction(wrapped)


async def test_results_are_cached_by_arguments(cache: Cache) -> None:
    """Equal arguments, however passed, share one entry; different ones do not."""
    calls: list[tuple[int, str]] = []

    @cached(namespace="tournament", cache=cache)
    async def standings(team_id: int, season: str = "2026") -> list[int]:
        calls.append((team_id, season))
        return [team_id]

    assert await standings(1) == [1]
    assert await standings(1, "2026") == [1]
    assert await standings(team_id=1, season="2026") == [1]
    assert await standings(2) == [2]
    assert calls == [(1, "2026"), (2, "2026")]


async def test_equal_but_differently_typed_arguments_do_not_collide(cache: Cache) -> None:
    """1, 1.0 and True are equal in Python but are different cache keys."""

    @cached(namespace="profile", cache=cache)
    async def echo(x: object) -> str:
        return repr(x)

    assert [await echo(1), await echo(True), await echo(1.0), await echo(1)] == [
        "1",
        "True",
        "1.0",
        "1",
    ]
    assert len({echo.cache_key(1), echo.cache_key(True), echo.cache_key(1.0)}) == 3


async def test_key_names_select_arguments(cache: Cache) -> None:
    """key=(names) keys on those parameters only, so others (a session) may be anything."""
    calls = 0

    @cached(namespace="profile", key=("user_id",), cache=cache)
    async def profile(user_id: int, session: object) -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"id": user_id}

    assert await profile(5, object()) == await profile(5, session=object())
    assert calls == 1


async def test_key_callable_and_tags_callable(cache: Cache) -> None:
    """A key callable picks the parts; a tags callable tags the entry for invalidation."""
    calls = 0

    @cached(
        namespace="leaderboard",
        key=lambda event, limit: (event.lower(), limit),
        tags=lambda event, limit: [f"event:{event.lower()}"],
        cache=cache,
    )
    async def board(event: str, limit: int) -> list[str]:
        nonlocal calls
        calls += 1
        return [event] * limit

    await board("Pong", 2)
    await board("PONG", 2)
    assert calls == 1
    await cache.invalidate_tags("event:pong")
    await board("pong", 2)
    assert calls == 2


async def test_unknown_key_name_fails_at_decoration() -> None:
    """A key naming no parameter is an error when the module is imported, not per request."""

    async def f(a: int) -> int:
        return a

    with pytest.raises(TypeError, match="not plain parameters"):
        cached(namespace="profile", key=("b",))(f)


async def test_sync_function_is_refused() -> None:
    """@cached needs an async function and says so."""

    def f() -> int:
        return 1

    with pytest.raises(TypeError, match="async function"):
        cached(namespace="profile")(f)  # type: ignore[arg-type]


async def test_unbound_function_explains_how_to_bind() -> None:
    """Calling a @cached function with no cache bound or current raises ConfigurationError."""

    @cached(namespace="profile")
    async def f() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="bind"):
        await f()


async def test_use_cache_and_bind(cache: Cache) -> None:
    """use_cache makes a cache current for a block; cache.bind pins one for good."""
    calls = 0

    @cached(namespace="profile")
    async def f() -> int:
        nonlocal calls
        calls += 1
        return 1

    with use_cache(cache):
        await f()
        await f()
    assert calls == 1
    other = Cache(with_test_namespaces())
    other.bind(f)
    await f()
    assert calls == 2


async def test_invalidate_helper_deletes_the_entry(cache: Cache) -> None:
    """fn.invalidate(args) drops the entry fn(args) reads."""
    calls = 0

    @cached(namespace="profile", cache=cache)
    async def f(x: int) -> int:
        nonlocal calls
        calls += 1
        return x

    await f(3)
    await f.invalidate(3)
    await f(3)
    assert calls == 2


async def test_return_type_is_restored_from_l2(redis_server) -> None:
    """A pydantic return annotation is validated back, so hits from Redis are models too."""
    from tenfold import RedisSettings

    first = Cache(with_test_namespaces(), RedisSettings(url=redis_server.url))
    second = Cache(with_test_namespaces(), RedisSettings(url=redis_server.url))
    await first.start()
    await second.start()
    try:

        @dataclass
        class Calls:
            n: int = 0

        calls = Calls()

        @cached(namespace="profile")
        async def profile(user_id: int) -> Profile:
            calls.n += 1
            return Profile(id=user_id, name="Ada")

        with use_cache(first):
            miss = await profile(user_id=12345)
        with use_cache(second):
            hit = await profile(user_id=12345)  # second's L1 is cold: read from Redis
        assert miss == hit == Profile(id=12345, name="Ada")
        assert isinstance(hit, Profile)
        assert calls.n == 1
        await first.delete(profile.cache_key(12345))
    finally:
        await first.stop()
        await second.stop()


PROFILE_LOADS: list[int] = []


# Module level: with postponed annotations FastAPI resolves Depends(...) from module globals.
@cached(namespace="profile", key=("user_id",))
async def current_profile(user_id: int) -> Profile:
    PROFILE_LOADS.append(user_id)
    return Profile(id=user_id, name=f"user {user_id}")


async def me(profile: Annotated[Profile, Depends(current_profile)]) -> Profile:
    return profile


async def test_works_as_a_fastapi_dependency(cache: Cache) -> None:
    """A @cached dependency is resolved by FastAPI from its own signature and cached."""
    app = FastAPI()
    app.add_middleware(CacheMiddleware, cache=cache)
    app.get("/me")(me)
    PROFILE_LOADS.clear()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(3):
            response = await client.get("/me", params={"user_id": 7})
            assert response.status_code == 200
            assert response.json() == {"id": 7, "name": "user 7"}
        assert (await client.get("/me", params={"user_id": "x"})).status_code == 422
    assert PROFILE_LOADS == [7]
