"""A relay process killed between publishing a batch and committing its checkpoint.

`tenfold events relay` runs as a subprocess whose PostgreSQL connection goes
through a FaultProxy. The proxy slows every round trip, so once the test sees
the batch in the Redis stream the relay's checkpoint update is still on its
way: the test blackholes the proxy, SIGKILLs the relay and resets its
connections (PostgreSQL rolls the transaction back). A new relay publishes the
batch again; the consumer applies each event once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tenfold.db import Database
from tenfold.events import EventConsumer, EventStore, NewEvent, RedisStream, create_tables
from tenfold.events._checkpoint import load_checkpoint
from tenfold.testing import FaultProxy, PgCluster, RedisServer
from tests.events.conftest import CURSOR_SECRET, pg_settings
from tests.events.test_inbox import apply_deposit, balances_of, read_model

REPO = Path(__file__).resolve().parents[2]
TENFOLD = Path(sys.executable).with_name("tenfold")
KEY = "crashapp:events"
_NOT_INHERITED = ("TENFOLD_", "PYTHONPATH", "PROMETHEUS_")


def relay_env(db_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
    env.update(
        TENFOLD_APP__NAME="crashapp",
        TENFOLD_DB__URL=db_url,
        TENFOLD_DB__CURSOR_SECRET=CURSOR_SECRET.get_secret_value(),
        TENFOLD_REDIS__URL=redis_url,
        TENFOLD_EVENTS__RELAY_INTERVAL="0.05",
        TENFOLD_EVENTS__RELAY_MAXLEN="0",
    )
    return env


@asynccontextmanager
async def relay_process(
    tmp_path: Path, env: dict[str, str], log: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`tenfold --app tests.events.relay_app:make_app events relay`; SIGTERM on exit."""
    out = (tmp_path / f"{log}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        str(TENFOLD),
        "--app",
        "tests.events.relay_app:make_app",
        "--app-dir",
        str(REPO),
        "events",
        "relay",
        cwd=tmp_path,
        env=env,
        stdout=out,
        stderr=out,
    )
    out.close()
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise


async def wait_for_length(client: Any, length: int) -> None:
    """Return as soon as the stream has ``length`` entries; fail after 60 s (a hang guard)."""
    for _ in range(6000):
        if await client.xlen(KEY) >= length:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {length} entries in {KEY} after 60 s")


@pytest.fixture
async def crash_db(pg_cluster: PgCluster, pg_events_db: str) -> AsyncIterator[Database]:
    """The test's own connection to the database (not through the proxy), with the tables."""
    db = Database(pg_settings(pg_cluster, pg_events_db))
    await db.start()
    await create_tables(db)
    async with db.session() as session:
        await session.run_sync(lambda s: read_model.create_all(s.connection()))
    yield db
    await db.stop()


async def test_relay_killed_before_its_commit_republishes_and_consumer_applies_once(
    tmp_path: Path,
    pg_cluster: PgCluster,
    pg_events_db: str,
    redis_server: RedisServer,
    fault_proxy: Callable[..., FaultProxy],
    crash_db: Database,
) -> None:
    """A relay killed between publish and checkpoint leaves duplicates that the inbox skips."""
    primary = pg_cluster.primary
    proxy = fault_proxy(primary.host, primary.port)
    via_proxy = primary.url(pg_events_db).replace(
        f"@{primary.host}:{primary.port}/", f"@{proxy.address}/"
    )
    env = relay_env(via_proxy, redis_server.url)
    store = EventStore(crash_db)
    client = aioredis.Redis.from_url(redis_server.url)
    await client.delete(KEY)
    try:
        async with relay_process(tmp_path, env, "relay-1") as first:
            await store.append("acct-0", [NewEvent("Deposited", {"n": 1})], 0)
            await wait_for_length(client, 1)  # the relay is up and caught up
            proxy.set_latency(0.5)
            # One commit: the relay reads the whole batch in one pass.
            async with crash_db.session() as session:
                deposits = [NewEvent("Deposited", {"n": n}) for n in (1, 2, 3, 4)]
                await store.append("acct-1", deposits, 0, session=session)
                await store.append(
                    "acct-2", [NewEvent("Deposited", {"n": 10})] * 2, 0, session=session
                )
            await wait_for_length(client, 7)
            proxy.blackhole()
            first.kill()
            await first.wait()
        proxy.reset_connections()
        proxy.heal()

        async with crash_db.session() as session:
            checkpoint = await load_checkpoint(session, f"relay:{KEY}", lock=False)
        published = await store.read_all()
        assert checkpoint == published[0].position, "the batch's checkpoint committed"

        async with relay_process(tmp_path, env, "relay-2"):
            await wait_for_length(client, 13)

        consumer = EventConsumer(crash_db, RedisStream(client, KEY), "balances", apply_deposit)
        totals = await consumer.run_until_idle()
        entries = await client.xrange(KEY)
    finally:
        await client.aclose()

    ids = [fields[b"id"].decode() for _, fields in entries]
    assert len(ids) == 13
    assert sorted(ids.count(e.id) for e in published) == [1] + [2] * 6
    assert (totals.applied, totals.duplicates) == (7, 6)
    assert await balances_of(crash_db) == {"acct-0": 1, "acct-1": 10, "acct-2": 20}


async def test_relay_command_once_publishes_what_is_committed(
    tmp_path: Path,
    pg_cluster: PgCluster,
    pg_events_db: str,
    redis_server: RedisServer,
    crash_db: Database,
) -> None:
    """`tenfold events relay --once` publishes the committed events, says how many, and exits."""
    store = EventStore(crash_db)
    await store.append("acct-1", [NewEvent("Deposited", {"n": 1})] * 3, 0)
    client = aioredis.Redis.from_url(redis_server.url)
    await client.delete(KEY)
    proc = await asyncio.create_subprocess_exec(
        str(TENFOLD),
        "--app",
        "tests.events.relay_app:make_app",
        "--app-dir",
        str(REPO),
        "events",
        "relay",
        "--once",
        cwd=tmp_path,
        env=relay_env(pg_cluster.primary.url(pg_events_db), redis_server.url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    try:
        length = await client.xlen(KEY)
    finally:
        await client.aclose()

    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == f"3 events relayed to {KEY}"
    assert length == 3


async def test_relay_command_refuses_the_memory_target(tmp_path: Path) -> None:
    """Without Redis, `tenfold events relay` exits with an error instead of marking events
    published into a stream that dies with it."""
    env = relay_env(f"sqlite+aiosqlite:///{tmp_path}/app.db", "")
    del env["TENFOLD_REDIS__URL"]
    proc = await asyncio.create_subprocess_exec(
        str(TENFOLD),
        "--app",
        "tests.events.relay_app:make_app",
        "--app-dir",
        str(REPO),
        "events",
        "relay",
        "--once",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 1
    assert "TENFOLD_EVENTS__RELAY_ENABLED" in err.decode()
    assert "relayed" not in out.decode()
