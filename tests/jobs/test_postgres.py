"""The jobs tables on PostgreSQL: concurrent deliveries of one key, and concurrent relays."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from tenfold import Platform, RedisSettings, Settings
from tenfold.jobs import JobsExtension, create_tables
from tenfold.jobs._celery import redis_lists
from tenfold.jobs._once import SKIPPED, run_once, task_session
from tenfold.testing import PgCluster, RedisServer
from tests.jobs import worker_app
from tests.jobs.conftest import redis_client

SECRET = SecretStr("jobs-tests-cursor-secret")


@pytest.fixture
def pg_jobs_db(pg_cluster: PgCluster) -> Iterator[str]:
    name = pg_cluster.create_database()
    yield pg_cluster.primary.url(name)
    pg_cluster.drop_database(name)


def _platform(url: str, redis: RedisServer) -> Platform:
    settings = Settings.load(
        db={"url": url, "cursor_secret": SECRET}, redis=RedisSettings(url=redis.url)
    )
    return Platform.build(
        settings, extensions=[JobsExtension(tasks=[worker_app.tasks])], configure_logs=False
    )


@pytest.fixture
async def pg_platform(pg_jobs_db: str, redis_server: RedisServer) -> AsyncIterator[Platform]:
    async with _platform(pg_jobs_db, redis_server) as platform:
        await create_tables(platform.db)
        async with platform.db.session() as session:
            await session.run_sync(lambda s: worker_app.metadata.create_all(s.connection()))
        yield platform


async def test_concurrent_deliveries_of_one_key_have_one_effect(pg_platform: Platform) -> None:
    """The second delivery waits on the first one's key row, then skips its committed run;
    after a rolled-back first run, the next delivery runs."""
    db = pg_platform.db
    first_inside = asyncio.Event()
    release = asyncio.Event()

    async def effect(marker: str, *, hold: bool) -> None:
        await task_session().execute(sa.insert(worker_app.marks).values(marker=marker, sent_to=""))
        if hold:
            first_inside.set()
            await release.wait()

    first = asyncio.create_task(run_once(db, "k1", "t", lambda: effect("one", hold=True), now=1.0))
    await first_inside.wait()
    second = asyncio.create_task(
        run_once(db, "k1", "t", lambda: effect("one", hold=False), now=2.0)
    )
    await asyncio.sleep(0.2)  # the second is blocked on the key's row lock, not done
    assert not second.done()
    release.set()
    assert await first is None
    assert await second is SKIPPED

    async def failing() -> None:
        await task_session().execute(sa.insert(worker_app.marks).values(marker="two", sent_to=""))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await run_once(db, "k2", "t", failing, now=3.0)
    assert await run_once(db, "k2", "t", lambda: effect("two", hold=False), now=4.0) is None

    async with db.session(readonly=True) as session:
        markers = (await session.scalars(sa.select(worker_app.marks.c.marker))).all()
    assert sorted(markers) == ["one", "two"]


async def test_two_relays_send_each_left_row_once(
    pg_jobs_db: str,
    pg_platform: Platform,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """300 rows left in the outbox, two platforms' relays draining at once: 300 messages."""
    queue = f"relay-{uuid.uuid4().hex[:8]}"
    async with pg_platform.db.session() as session:
        for n in range(300):
            await session.execute(
                sa.text(
                    "INSERT INTO tenfold_job_outbox (id, task, message, created_at) "
                    "VALUES (:id, :task, CAST(:message AS json), 0)"
                ),
                {
                    "id": f"left-{n}",
                    "task": worker_app.mark.name,
                    "message": f'{{"args": ["{n}"], "queue": "{queue}"}}',
                },
            )
    async with _platform(pg_jobs_db, redis_server) as other:
        relays = [pg_platform.jobs.relay, other.jobs.relay]
        assert all(relays)
        counts = await asyncio.gather(*(r.drain() for r in relays if r is not None))
    assert sum(counts) == 300
    redis = redis_client(redis_server)
    assert sum(redis.llen(name) for name in redis_lists(queue)) == 300
    async with pg_platform.db.session(readonly=True) as session:
        assert await session.scalar(sa.text("SELECT count(*) FROM tenfold_job_outbox")) == 0
