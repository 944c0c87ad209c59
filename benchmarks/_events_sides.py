"""The two sides of bench_events: tenfold's EventStore and pyeventsourcing's PostgreSQL recorder.

Both write the same event: ``PAYLOAD`` with its number ``i``, about 100 bytes
of JSON (tenfold stores it as ``data``; the peer stores the same bytes as its
``state``, which is what its JSON transcoder would make of it).

The peer is ``eventsourcing.postgres.PostgresApplicationRecorder``: its
recorder for stored events with a global order (``notification_id``), the one
an ``Application`` uses. Its ``insert_events`` takes an EXCLUSIVE lock on the
table so that ids are handed out in commit order, and sends ``NOTIFY``; its
``subscribe()`` LISTENs. It is synchronous (psycopg 3): writers are threads.

Run as ``python -m benchmarks._events_sides SIDE URL AFTER COUNT POLL OUT REDIS``, it
is the subscriber in another process: it prints ``ready`` once subscribed,
then writes ``{i: when handled}`` of COUNT events to OUT as JSON. REDIS is the
URL tenfold's hints travel over, or ``-`` for none (polling only).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from tenfold import CoreSettings, Platform, RedisSettings, Settings
from tenfold.db import Database
from tenfold.events import (
    EventsExtension,
    EventsSettings,
    EventStore,
    NewEvent,
    Position,
    create_tables,
)

__all__ = [
    "PEER",
    "asyncpg_inserts",
    "peer_appends",
    "peer_paced",
    "peer_recorder",
    "peer_subscribe",
    "tenfold_appends",
    "tenfold_paced",
    "tenfold_store",
    "tenfold_subscribe",
]

PEER = "eventsourcing"
TYPE, TOPIC = "Deposited", "bench_events:Deposited"
#: Signs cursors: tenfold refuses PostgreSQL without one.
CURSOR_SECRET = "bench-events-cursor-secret"
_NOTE = "x" * 80
Handled = dict[int, float]


def payload(i: int) -> dict[str, Any]:
    return {"i": i, "account": "acc-0001", "amount": 1250, "note": _NOTE}


# -- tenfold ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def tenfold_store(
    url: str, *, pool_size: int, poll_interval: float, redis_url: str | None = None
) -> AsyncIterator[EventStore]:
    """The EventStore of a started platform on ``url`` (a pool of ``pool_size``), as an app
    has it; with ``redis_url`` its appends send hints that wake other processes' subscribers.
    """
    composed = CoreSettings.compose([*Settings.sections.items(), ("events", EventsSettings)])
    settings = composed.load(
        app={"name": "bench-events"},
        db={
            "url": url,
            "cursor_secret": CURSOR_SECRET,
            "pool_size": pool_size,
            "max_overflow": 0,
        },
        redis=RedisSettings(url=redis_url),
        events={"poll_interval": poll_interval},
    )
    platform = Platform.build(settings, extensions=[EventsExtension()], configure_logs=False)
    await platform.start()
    try:
        await create_tables(platform.get(Database))
        yield platform.get(EventStore)
    finally:
        await platform.stop()


async def tenfold_appends(store: EventStore, writers: int, count: int, tag: str) -> float:
    """Appends per second: ``writers`` tasks, each appending one event at a time to its stream."""
    per = count // writers

    async def writer(k: int) -> None:
        stream = f"{tag}-{k}"
        for version in range(per):
            await store.append(stream, [NewEvent(TYPE, payload(version))], version)

    start = time.perf_counter()
    await asyncio.gather(*(writer(k) for k in range(writers)))
    return per * writers / (time.perf_counter() - start)


async def tenfold_paced(
    store: EventStore, stream: str, rate: float, count: int, writers: int
) -> Handled:
    """Append event ``i`` at ``i / rate`` s; when each append returned (committed).

    ``writers`` tasks share the schedule (each its own stream), so one slow
    append does not hold back the ones due after it.
    """
    committed: Handled = {}
    start = time.perf_counter()

    async def writer(k: int) -> None:
        for version, i in enumerate(range(k, count, writers)):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            await store.append(f"{stream}-{k}", [NewEvent(TYPE, payload(i))], version)
            committed[i] = time.time()

    await asyncio.gather(*(writer(k) for k in range(writers)))
    return committed


async def tenfold_subscribe(
    store: EventStore, after: Position, count: int, ready: Callable[[], None]
) -> Handled:
    """When each of the ``count`` events after ``after`` reached the subscriber."""
    handled: Handled = {}
    await store.read_all(after, limit=1)  # a connection in the pool before the clock starts
    ready()
    async with contextlib.aclosing(store.subscribe(after)) as events:
        async for event in events:
            handled[event.data["i"]] = time.time()
            if len(handled) >= count:
                break
    return handled


# -- the ceiling: a plain INSERT on raw asyncpg ------------------------------------------------


async def asyncpg_inserts(dsn: str, writers: int, count: int, pool_size: int) -> float:
    """Inserts per second of one ~100-byte JSON row each, autocommit, on a raw asyncpg pool:
    no version check, no order, one index. What the server and driver allow, for scale."""
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    try:
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS plain_inserts "
            "(id bigserial PRIMARY KEY, stream text NOT NULL, data jsonb NOT NULL)"
        )
        per = count // writers

        async def writer(k: int) -> None:
            for i in range(per):
                await pool.execute(
                    "INSERT INTO plain_inserts (stream, data) VALUES ($1, $2::jsonb)",
                    f"s{k}",
                    orjson.dumps(payload(i)).decode(),
                )

        await asyncio.gather(*(writer(k) for k in range(writers)))  # untimed: prepared, warm
        start = time.perf_counter()
        await asyncio.gather(*(writer(k) for k in range(writers)))
        return per * writers / (time.perf_counter() - start)
    finally:
        await pool.close()


# -- pyeventsourcing -------------------------------------------------------------------------


def peer_recorder(dsn: str, *, pool_size: int) -> PostgresApplicationRecorder:
    """pyeventsourcing's application recorder on ``dsn`` (its table created), pooled."""
    parts = urlsplit(dsn)
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/"),
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
        pool_size=pool_size,
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    return recorder


def _stored(originator: uuid.UUID, version: int, i: int) -> StoredEvent:
    return StoredEvent(originator, version, TOPIC, orjson.dumps(payload(i)))


def peer_appends(recorder: PostgresApplicationRecorder, writers: int, count: int) -> float:
    """Inserts per second: ``writers`` threads, each inserting one event at a time to its own id."""
    per = count // writers
    started = threading.Barrier(writers + 1)

    def writer() -> None:
        originator = uuid.uuid4()
        started.wait()
        for version in range(1, per + 1):
            recorder.insert_events([_stored(originator, version, version)])

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    started.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return per * writers / (time.perf_counter() - start)


def peer_paced(
    recorder: PostgresApplicationRecorder, rate: float, count: int, writers: int
) -> Handled:
    """Insert event ``i`` at ``i / rate`` s from ``writers`` threads; when each insert returned."""
    committed: Handled = {}
    start = time.perf_counter()

    def writer(k: int) -> None:
        originator = uuid.uuid4()
        for version, i in enumerate(range(k, count, writers), 1):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            recorder.insert_events([_stored(originator, version, i)])
            committed[i] = time.time()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return committed


def peer_subscribe(
    recorder: PostgresApplicationRecorder, gt: int | None, count: int, ready: Callable[[], None]
) -> Handled:
    """When each of the ``count`` events after notification ``gt`` reached the subscriber."""
    handled: Handled = {}
    with recorder.subscribe(gt=gt) as subscription:
        ready()
        for notification in subscription:
            handled[orjson.loads(notification.state)["i"]] = time.time()
            if len(handled) >= count:
                break
    return handled


# -- the subscriber in another process -------------------------------------------------------


def _ready() -> None:
    print("ready", flush=True)


async def _tenfold_process(
    url: str, after: str, count: int, poll: float, redis_url: str | None
) -> Handled:
    async with tenfold_store(url, pool_size=2, poll_interval=poll, redis_url=redis_url) as store:
        return await tenfold_subscribe(store, Position.parse(after), count, _ready)


def main(argv: list[str]) -> int:
    side, url, after, count, poll, out, redis_url = argv
    if side == PEER:
        recorder = peer_recorder(url, pool_size=2)
        try:
            handled = peer_subscribe(recorder, int(after), int(count), _ready)
        finally:
            recorder.datastore.close()
    else:
        hints = redis_url if redis_url != "-" else None
        handled = asyncio.run(_tenfold_process(url, after, int(count), float(poll), hints))
    Path(out).write_bytes(orjson.dumps({str(k): v for k, v in handled.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
