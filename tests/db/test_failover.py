"""Server loss: a replica stopped under load, the primary stopped with -m immediate.

These tests stop shared session-scoped servers. Each restarts what it stopped in
``finally`` (the harness also heals after every test), so they run in any order.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from tenfold._errors import DatabaseUnavailable, TenfoldError
from tenfold.db import ConsistencyMiddleware, DbSession
from tenfold.testing import PgCluster, attach_platform
from tenfold.web import install_problem_handlers, problem_for_exception

from .conftest import MakeDatabase, in_recovery, wait_for


async def test_replica_loss_fails_no_reads_and_ejects_then_readmits_it(
    make_database: MakeDatabase, pg_cluster: PgCluster
) -> None:
    """Stopping the replica under a read loop fails no read; it is ejected, then re-admitted."""
    db = await make_database()
    replica = db.router.replicas[0]
    stats = {"reads": 0, "on_replica": 0}
    failures: list[BaseException] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            try:
                async with db.session(readonly=True) as read:
                    await read.scalar(sa.text("SELECT count(*) FROM items WHERE rank = 3"))
                    stats["on_replica"] += read.role == "replica"
            except TenfoldError as exc:
                failures.append(exc)
            stats["reads"] += 1

    async def reads_beyond(count: int) -> bool:
        return stats["reads"] >= count

    readers = [asyncio.create_task(reader()) for _ in range(4)]
    try:
        await wait_for(lambda: reads_beyond(40))
        assert stats["on_replica"] > 0
        await asyncio.to_thread(pg_cluster.replica.stop)
        after_stop = stats["reads"]
        await wait_for(lambda: reads_beyond(after_stop + 100))
        done.set()
        await asyncio.gather(*readers)
        assert failures == []
        await db.check_replicas()
        assert not replica.state.healthy
        async with db.session(readonly=True) as read:
            assert not await in_recovery(read)
    finally:
        done.set()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.to_thread(pg_cluster.replica.start)

    async def readmitted() -> bool:
        await db.check_replicas()
        return replica.state.healthy

    await wait_for(readmitted)
    async with db.session(readonly=True) as read:
        assert await in_recovery(read)


def _app(db: object) -> FastAPI:
    app = FastAPI()
    attach_platform(app, db)
    install_problem_handlers(app)

    @app.post("/notes")
    async def add_note(session: DbSession) -> dict[str, int]:
        note_id = await session.scalar(
            sa.text("INSERT INTO notes (body) VALUES ('via api') RETURNING id")
        )
        return {"id": note_id}

    app.add_middleware(ConsistencyMiddleware)
    return app


async def test_primary_loss_fails_fast_with_503_and_the_pool_recovers(
    make_database: MakeDatabase, pg_cluster: PgCluster
) -> None:
    """With the primary stopped -m immediate, sessions and requests fail fast; restart heals."""
    db = await make_database(replicas=False, pool_size=4)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(db)), base_url="http://t")

    async def lose_primary_mid_session() -> None:
        async with db.session() as write:
            await write.execute(sa.text("SELECT 1"))
            await asyncio.to_thread(pg_cluster.primary.stop, "immediate")
            await write.execute(sa.text("SELECT 1"))

    try:
        # A session that holds a connection when the primary dies fails on its next statement.
        # The bound on wait_for is generous: it only proves nothing hangs.
        with pytest.raises(DatabaseUnavailable):
            await asyncio.wait_for(lose_primary_mid_session(), 30)
    except BaseException:
        await asyncio.to_thread(pg_cluster.primary.start)
        raise
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            await asyncio.wait_for(_write(db), 30)
        assert problem_for_exception(raised.value).status_code == 503
        response = await asyncio.wait_for(client.post("/notes"), 30)
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 503
    finally:
        await asyncio.to_thread(pg_cluster.primary.start)

    await _write(db)  # no manual step: pre-ping and invalidation replace dead connections
    response = await client.post("/notes")
    assert response.status_code == 200
    assert isinstance(response.json()["id"], int)  # the write committed on the new pool
    # No replicas, so no token: nothing could use it.
    assert "x-consistency-token" not in response.headers
    await client.aclose()


async def _write(db: object) -> None:
    async with db.session() as write:  # type: ignore[attr-defined]
        await write.execute(sa.text("INSERT INTO notes (body) VALUES ('after')"))


async def test_primary_loss_under_load_answers_503_problems_and_recovers(
    make_database: MakeDatabase, pg_cluster: PgCluster
) -> None:
    """Under a loop of concurrent writes, a crashed primary yields only 503 problems, then 200s."""
    db = await make_database(replicas=False, pool_size=4, pool_timeout=2.0, connect_timeout=2.0)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(db)), base_url="http://t")
    statuses: list[int] = []
    bad: list[str] = []
    stop = asyncio.Event()
    # No request may take longer than a pool wait plus a connect attempt (plus slack for
    # this 2-core machine): this bound detects a hang, it is not a latency assertion.
    hang_bound = 2.0 + 2.0 + 10.0

    async def writer() -> None:
        while not stop.is_set():
            response = await asyncio.wait_for(client.post("/notes"), hang_bound)
            statuses.append(response.status_code)
            if response.status_code == 503:
                if not response.headers["content-type"].startswith("application/problem+json"):
                    bad.append(response.text)
            elif response.status_code != 200:
                bad.append(f"{response.status_code}: {response.text}")
            await asyncio.sleep(0)

    writers = [asyncio.create_task(writer()) for _ in range(8)]
    try:
        await wait_for(lambda: _at_least(statuses, 50))
        await asyncio.to_thread(pg_cluster.primary.stop, "immediate")
        await wait_for(lambda: _count_at_least(statuses, 503, 30))
    finally:
        await asyncio.to_thread(pg_cluster.primary.start)
    seen = len(statuses)
    await wait_for(lambda: _tail_all_ok(statuses, seen, 50))
    stop.set()
    await asyncio.gather(*writers)
    await client.aclose()
    assert bad == []
    assert statuses.count(503) >= 30


async def _at_least(statuses: list[int], n: int) -> bool:
    return len(statuses) >= n


async def _count_at_least(statuses: list[int], status: int, n: int) -> bool:
    return statuses.count(status) >= n


async def _tail_all_ok(statuses: list[int], start: int, n: int) -> bool:
    """At least n answers after ``start`` and the last n of them are all 200."""
    tail = statuses[start:]
    return len(tail) >= n and all(s == 200 for s in tail[-n:])
