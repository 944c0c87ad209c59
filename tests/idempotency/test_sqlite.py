"""Idempotency keys on the embedded profile's SQLite, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from tenfold import DatabaseSettings, set_principal
from tenfold.db import Database
from tenfold.idempotency import (
    PROBLEMS,
    IdempotencyConfig,
    IdempotentRoute,
    IdempotentSession,
    create_table,
    idempotent_session,
)
from tenfold.testing import ManualClock, attach_platform
from tenfold.web import ProblemRegistry, install_problem_handlers

CLOCK = ManualClock()
ShortSession = Annotated[
    AsyncSession,
    Depends(idempotent_session(IdempotencyConfig(ttl=60, clock=CLOCK)), scope="function"),
]
router = APIRouter(route_class=IdempotentRoute)


async def _insert(session: AsyncSession, text: str) -> int:
    sql = sa.text("INSERT INTO notes (body) VALUES (:b) RETURNING id")
    return int(await session.scalar(sql, {"b": text}))


@router.post("/notes")
async def add_note(body: dict[str, str], session: IdempotentSession) -> dict[str, int]:
    return {"id": await _insert(session, body["text"])}


@router.post("/fail")
async def fail(body: dict[str, str], session: IdempotentSession) -> dict[str, int]:
    await _insert(session, body["text"])
    raise RuntimeError("boom")


@router.post("/short")
async def short(body: dict[str, str], session: ShortSession) -> dict[str, int]:
    return {"id": await _insert(session, body["text"])}


def _app(db: Database) -> FastAPI:
    app = FastAPI()
    attach_platform(app, db)
    install_problem_handlers(app, ProblemRegistry(PROBLEMS))
    app.include_router(router)

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        set_principal("alice")
        return await call_next(request)

    return app


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    db = Database(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/t.db")))
    await db.start()
    await create_table(db)
    async with db.session() as session:
        await session.execute(sa.text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    transport = httpx.ASGITransport(app=_app(db), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client, db
    await db.stop()


async def _count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(sa.text("SELECT count(*) FROM notes")))


async def _post(client: httpx.AsyncClient, path: str, key: str, text: str) -> httpx.Response:
    return await client.post(path, json={"text": text}, headers={"Idempotency-Key": key})


async def test_replay_on_sqlite(setup: tuple[httpx.AsyncClient, Database]) -> None:
    """On SQLite a retry replays the stored response and writes nothing more."""
    client, db = setup
    first = await _post(client, "/notes", "k", "a")
    again = await _post(client, "/notes", "k", "a")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert await _count(db) == 1
    assert (await _post(client, "/notes", "k", "b")).status_code == 422


async def test_quoted_key_is_the_same_key(setup: tuple[httpx.AsyncClient, Database]) -> None:
    """The IETF draft's quoted form of a key names the same key as the bare form."""
    client, db = setup
    await _post(client, "/notes", "k", "a")
    assert (await _post(client, "/notes", '"k"', "a")).headers["idempotent-replayed"] == "true"
    assert await _count(db) == 1


async def test_handler_error_rolls_back_key_and_writes(
    setup: tuple[httpx.AsyncClient, Database],
) -> None:
    """A handler that raises leaves neither its writes nor the key, so a retry runs again."""
    client, db = setup
    assert (await _post(client, "/fail", "k", "a")).status_code == 500
    assert (await _post(client, "/fail", "k", "a")).status_code == 500
    assert await _count(db) == 0


async def test_expired_key_runs_again(setup: tuple[httpx.AsyncClient, Database]) -> None:
    """After the TTL the key is free: the same request runs the handler again."""
    client, db = setup
    first = await _post(client, "/short", "k", "a")
    CLOCK.now += 61
    second = await _post(client, "/short", "k", "a")
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert await _count(db) == 2
