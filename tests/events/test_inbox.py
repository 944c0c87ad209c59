"""The consumer side: each published event applied once, with its inbox row, in one transaction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tenfold.db import Database, TenfoldSession
from tenfold.events import (
    EventConsumer,
    EventRelay,
    EventStore,
    MemoryStream,
    NewEvent,
    RecordedEvent,
)
from tenfold.events._tables import inbox

read_model = sa.MetaData()
#: A read model the handler keeps: the sum of each account's deposits.
balances = sa.Table(
    "balances",
    read_model,
    sa.Column("account", sa.String(100), primary_key=True),
    sa.Column("total", sa.Integer, nullable=False),
)


async def apply_deposit(event: RecordedEvent, session: TenfoldSession) -> None:
    """Add the deposit to the account's balance (the handler's database effect)."""
    updated = await session.execute(
        sa.update(balances)
        .where(balances.c.account == event.stream_id)
        .values(total=balances.c.total + event.data["n"])
    )
    if updated.rowcount == 0:
        await session.execute(
            sa.insert(balances).values(account=event.stream_id, total=event.data["n"])
        )


async def balances_of(db: Database) -> dict[str, int]:
    async with db.session(readonly=True) as session:
        rows = (await session.execute(sa.select(balances.c.account, balances.c.total))).all()
        return {account: total for account, total in rows}


@pytest.fixture
async def deposits(store: EventStore) -> EventStore:
    """The store with the read model's table and two accounts' deposits appended."""
    async with store.db.session() as session:
        await session.run_sync(lambda s: read_model.create_all(s.connection()))
    await store.append("acct-1", [NewEvent("Deposited", {"n": n}) for n in (1, 2, 3)], 0)
    await store.append("acct-2", [NewEvent("Deposited", {"n": 10})], 0)
    await store.append("acct-1", [NewEvent("Deposited", {"n": 4})], 3)
    return store


async def test_republished_events_are_applied_once(deposits: EventStore) -> None:
    """A batch published twice (a relay restarted before its commit) is applied once."""
    stream = MemoryStream()
    await EventRelay(deposits, stream).drain()
    await stream.publish(await deposits.read_all())
    consumer = EventConsumer(deposits.db, stream, "balances", apply_deposit, batch_size=3)

    totals = await consumer.run_until_idle()

    assert (totals.applied, totals.duplicates) == (5, 5)
    assert (consumer.applied, consumer.duplicates) == (5, 5)
    assert await balances_of(deposits.db) == {"acct-1": 10, "acct-2": 10}
    async with deposits.db.session(readonly=True) as session:
        rows = (await session.execute(sa.select(inbox.c.stream_id, inbox.c.version))).all()
    assert sorted(rows) == [("acct-1", 4), ("acct-2", 1)]


async def test_a_failing_handler_rolls_back_its_batch(deposits: EventStore) -> None:
    """When the handler raises, neither its effects nor the inbox rows commit; the retry applies
    the batch."""
    stream = MemoryStream()
    await EventRelay(deposits, stream).drain()
    calls = 0

    async def flaky(event: RecordedEvent, session: TenfoldSession) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("read model unavailable")
        await apply_deposit(event, session)

    consumer = EventConsumer(deposits.db, stream, "balances", flaky)
    with pytest.raises(RuntimeError):
        await consumer.poll()
    assert await balances_of(deposits.db) == {}

    batch = await consumer.poll()

    assert (batch.applied, batch.duplicates) == (5, 0)
    assert await balances_of(deposits.db) == {"acct-1": 10, "acct-2": 10}


async def test_a_restarted_consumer_resumes_after_its_last_commit(deposits: EventStore) -> None:
    """A new consumer of the same name reads on from the stored place, not from the start."""
    stream = MemoryStream()
    await EventRelay(deposits, stream).drain()
    await EventConsumer(deposits.db, stream, "balances", apply_deposit).run_until_idle()
    await deposits.append("acct-2", [NewEvent("Deposited", {"n": 5})], 1)
    await EventRelay(deposits, stream).drain()

    again = EventConsumer(deposits.db, stream, "balances", apply_deposit)
    totals = await again.run_until_idle()

    assert (totals.applied, totals.duplicates) == (1, 0)
    assert await balances_of(deposits.db) == {"acct-1": 10, "acct-2": 15}


async def test_consumers_of_other_names_each_apply_every_event(deposits: EventStore) -> None:
    """The inbox is per consumer: a second consumer name applies every event again."""
    stream = MemoryStream()
    await EventRelay(deposits, stream).drain()
    seen: list[tuple[str, int]] = []

    async def audit(event: RecordedEvent, session: TenfoldSession) -> None:
        seen.append((event.stream_id, event.version))

    await EventConsumer(deposits.db, stream, "balances", apply_deposit).run_until_idle()
    totals = await EventConsumer(deposits.db, stream, "audit", audit).run_until_idle()

    assert totals.applied == 5
    assert seen == [("acct-1", 1), ("acct-1", 2), ("acct-1", 3), ("acct-2", 1), ("acct-1", 4)]


async def test_versions_missing_from_the_stream_do_not_stop_the_consumer(
    deposits: EventStore,
) -> None:
    """A consumer that first sees a stream at a later version (trimmed entries) applies it on."""
    stream = MemoryStream()
    await stream.publish([e for e in await deposits.read_all() if e.version >= 3])
    consumer = EventConsumer(deposits.db, stream, "balances", apply_deposit)

    totals = await consumer.run_until_idle()

    assert (totals.applied, totals.duplicates) == (2, 0)
    assert await balances_of(deposits.db) == {"acct-1": 7}
