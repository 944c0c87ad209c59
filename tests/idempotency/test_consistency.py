"""Read-your-writes through a replayed response, on the harness primary and replica."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import SecretStr

from tenfold import DatabaseSettings, set_principal
from tenfold.db import ConsistencyMiddleware, Database, ReadSession, parse_token
from tenfold.idempotency import (
    PROBLEMS,
    IdempotencyStore,
    IdempotentRoute,
    IdempotentSession,
    MemoryStore,
    create_table,
    idempotency_key,
)
from tenfold.testing import PgCluster, attach_platform
from tenfold.web import ProblemRegistry, install_problem_handlers

HEADER = "X-Consistency-Token"


def _app(db: Database, store: IdempotencyStore) -> FastAPI:
    app = FastAPI()
    attach_platform(app, db)
    install_problem_handlers(app, ProblemRegistry(PROBLEMS))
    router = APIRouter(route_class=IdempotentRoute)

    @router.post("/deposits", status_code=201)
    async def deposit(session: IdempotentSession) -> dict[str, int]:
        sql = sa.text("INSERT INTO deposits (amount) VALUES (10) RETURNING id")
        return {"id": int(await session.scalar(sql))}

    keyed = [Depends(idempotency_key(store), scope="function")]

    @router.post("/keyed-deposits", status_code=201, dependencies=keyed)
    async def keyed_deposit() -> dict[str, int]:
        async with db.session() as session:
            sql = sa.text("INSERT INTO deposits (amount) VALUES (20) RETURNING id")
            deposit_id = int(await session.scalar(sql))
        return {"id": deposit_id}

    @app.get("/deposits/{deposit_id}")
    async def read(deposit_id: int, session: ReadSession) -> dict[str, Any]:
        sql = sa.text("SELECT amount FROM deposits WHERE id = :i")
        amount = await session.scalar(sql, {"i": deposit_id})
        replica = await session.scalar(sa.text("SELECT pg_is_in_recovery()"))
        return {"amount": amount, "replica": replica}

    app.include_router(router)

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        set_principal("alice")
        return await call_next(request)

    app.add_middleware(ConsistencyMiddleware, header=HEADER, cookie="tenfold_ct")
    return app


@pytest.fixture
async def app(pg_cluster: PgCluster, fresh_pg_database: str) -> AsyncIterator[FastAPI]:
    name = fresh_pg_database
    pg_cluster.primary.psql("CREATE TABLE deposits (id serial PRIMARY KEY, amount int)", db=name)
    assert pg_cluster.replica is not None
    settings = DatabaseSettings(
        url=SecretStr(pg_cluster.primary.url(name)),
        replicas=[SecretStr(pg_cluster.replica.url(name))],
        stale_reads="replica",
        replica_check_interval=3600.0,
        cursor_secret=SecretStr("idempotency-consistency-test"),
    )
    db = Database(settings)
    await db.start()
    await create_table(db)
    pg_cluster.wait_caught_up()
    try:
        yield _app(db, MemoryStore())
    finally:
        await db.stop()


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize(
    ("path", "amount"), [("/deposits", 10), ("/keyed-deposits", 20)], ids=["session", "store"]
)
async def test_a_replayed_response_carries_a_token_that_reads_the_first_write(
    app: FastAPI, pg_cluster: PgCluster, path: str, amount: int
) -> None:
    """A replay sends a consistency token under which the next read sees the first write."""
    pg_cluster.pause_replay()
    try:
        async with _client(app) as lost:  # the first attempt commits; its response is lost
            first = await lost.post(path, headers={"Idempotency-Key": "d-1"})
        assert first.status_code == 201
        assert HEADER in first.headers
        deposit = first.json()["id"]

        async with _client(app) as retry:
            replayed = await retry.post(path, headers={"Idempotency-Key": "d-1"})
            assert replayed.headers["idempotent-replayed"] == "true"
            assert replayed.json() == {"id": deposit}
            token = replayed.headers[HEADER]
            assert parse_token(token) >= parse_token(first.headers[HEADER])  # type: ignore[operator]
            assert f"tenfold_ct={token}" in replayed.headers["set-cookie"]

            by_cookie = await retry.get(f"/deposits/{deposit}")
            assert by_cookie.json() == {"amount": amount, "replica": False}
            retry.cookies.clear()
            by_header = await retry.get(f"/deposits/{deposit}", headers={HEADER: token})
            assert by_header.json() == {"amount": amount, "replica": False}
            stale = await retry.get(f"/deposits/{deposit}")  # no token: the paused replica
            assert stale.json() == {"amount": None, "replica": True}
    finally:
        pg_cluster.resume_replay()
