"""Keyset pagination: signed cursors, ties on the sort column, filters."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from tenfold import DatabaseSettings
from tenfold._errors import BadRequest, InvalidCursor
from tenfold.db import Cursor, CursorCodec, Database, Paginator
from tenfold.web import problem_for_exception

from .conftest import MakeDatabase
from .test_loader import Item

SECRET = "test-cursor-secret"


@pytest.fixture
async def db(make_database: MakeDatabase) -> Database:
    return await make_database()


async def _walk(db: Database, pager: Paginator, stmt: sa.Select, limit: int, **kw: object) -> list:
    """Follow next cursors from the first page to the last; returns the pages."""
    pages, cursor = [], None
    async with db.session(readonly=True) as read:
        while True:
            page = await pager.page(read, stmt, cursor=cursor, limit=limit, **kw)  # type: ignore[arg-type]
            pages.append(page)
            if page.next_cursor is None:
                return pages
            cursor = page.next_cursor


async def test_cursors_round_trip_through_every_page_without_dupes_or_gaps(db: Database) -> None:
    """Paging by (rank, id) where rank has many ties returns every row once, in order."""
    pager = Paginator(SECRET, sort=(Item.rank, Item.id))
    pages = await _walk(db, pager, sa.select(Item), limit=23)
    ids = [item.id for page in pages for item in page.items]
    expected = sorted(range(1, 501), key=lambda i: (i % 7, i))
    assert ids == expected
    assert pages[0].prev_cursor is None
    assert all(page.prev_cursor is not None for page in pages[1:])

    # And back again from the last page with prev cursors.
    back, cursor = [], pages[-1].prev_cursor
    async with db.session(readonly=True) as read:
        while cursor is not None:
            page = await pager.page(read, sa.select(Item), cursor=cursor, limit=23)
            back = [item.id for item in page.items] + back
            cursor = page.prev_cursor
    assert back + [item.id for item in pages[-1].items] == expected


async def test_descending_pages_and_column_selects(db: Database) -> None:
    """A descending key over a column select pages through rows in reverse order."""
    pager = Paginator(
        SECRET, sort=(Item.rank, Item.id), descending=True, filterable={"rank": Item.rank}
    )
    stmt = sa.select(Item.id, Item.rank)
    pages = await _walk(db, pager, stmt, limit=50, filters={"rank__in": "1,2"})
    rows = [(row.rank, row.id) for page in pages for row in page.items]
    assert rows == sorted(((i % 7, i) for i in range(1, 501) if i % 7 in (1, 2)), reverse=True)


async def test_typed_filters(db: Database) -> None:
    """eq/lt/gt/in filters convert query-string values to the column's type."""
    pager = Paginator(SECRET, sort=(Item.id,), filterable={"id": Item.id, "rank": Item.rank})
    async with db.session(readonly=True) as read:
        page = await pager.page(
            read, sa.select(Item), filters={"id__gt": "10", "id__lt": "30", "rank": "3"}
        )
    assert [i.id for i in page.items] == [i for i in range(11, 30) if i % 7 == 3]
    with pytest.raises(BadRequest):
        pager.parse_filters({"name": "x"})  # not declared filterable
    with pytest.raises(BadRequest):
        pager.parse_filters({"id__like": "1"})
    with pytest.raises(BadRequest):
        pager.parse_filters({"id": "not-a-number"})


async def test_a_tampered_cursor_raises_invalid_cursor(db: Database) -> None:
    """A changed, foreign, garbage or other-listing cursor raises InvalidCursor (400)."""
    pager = Paginator(SECRET, sort=(Item.rank, Item.id))
    async with db.session(readonly=True) as read:
        page = await pager.page(read, sa.select(Item), limit=5)
        cursor = page.next_cursor
        assert cursor is not None
        flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
        forged = CursorCodec("another-secret").encode(Cursor((0, 10**6)), scope=pager.scope)
        other_listing = Paginator(SECRET, sort=(Item.id,)).encode((5,))
        for bad in (flipped, forged, other_listing, "garbage!", "x" * 5000, cursor + "=="):
            with pytest.raises(InvalidCursor) as raised:
                await pager.page(read, sa.select(Item), cursor=bad)
            assert problem_for_exception(raised.value).status_code == 400


#: Sort-key values a forged or stale cursor could carry for (rank int, id int).
MISFIT_VALUES = [
    ("three", 1),
    (True, 1),
    (None, 1),
    (1.5, 1),
    (2**63, 1),
    (dt.datetime(2024, 5, 1, tzinfo=dt.UTC), 1),
    (uuid.UUID(int=1), 1),
    (1,),
]


async def _misfits_are_invalid_cursors(db: Database, misfits: list[tuple[object, ...]]) -> None:
    pager = Paginator(SECRET, sort=(Item.rank, Item.id))
    async with db.session(readonly=True) as read:
        for values in misfits:
            # Signed with the right secret: only the values are wrong.
            signed = CursorCodec(SECRET).encode(Cursor(values), scope=pager.scope)
            with pytest.raises(InvalidCursor) as raised:
                await pager.page(read, sa.select(Item), cursor=signed)
            assert problem_for_exception(raised.value).status_code == 400
        fits = await pager.page(read, sa.select(Item), cursor=pager.encode((6, 2**31 - 1)))
        assert fits.items == []  # the right types are queried as before


async def test_a_signed_cursor_with_misfit_values_is_400_on_postgres(db: Database) -> None:
    """Cursor values that do not fit the key's column types are a 400, never a driver error."""
    # int4 on PostgreSQL: 2**31 cannot be bound (SQLite's INTEGER would hold it).
    await _misfits_are_invalid_cursors(db, [*MISFIT_VALUES, (2**31, 1)])


async def test_a_signed_cursor_with_misfit_values_is_400_on_sqlite(tmp_path: Path) -> None:
    """The same misfit cursor values are refused on SQLite before they reach the database."""
    db = Database(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/p.db")))
    await db.start()
    try:
        async with db.session() as write:
            await write.run_sync(lambda s: Item.metadata.create_all(s.connection()))
            write.add_all([Item(id=i, name=f"item{i}", rank=i % 7) for i in range(1, 21)])
        await _misfits_are_invalid_cursors(db, MISFIT_VALUES)
    finally:
        await db.stop()


def test_cursor_values_keep_their_types() -> None:
    """Datetimes, dates, decimals and UUIDs survive the cursor round trip."""
    codec = CursorCodec(SECRET)
    values = (
        dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC),
        dt.date(2024, 5, 1),
        Decimal("1.10"),
        uuid.UUID(int=7),
        "text",
        3,
        None,
    )
    token = codec.encode(Cursor(values, "prev"), scope="s")
    assert codec.decode(token, scope="s") == Cursor(values, "prev")
    with pytest.raises(InvalidCursor):
        codec.decode(token, scope="other")
    with pytest.raises(InvalidCursor):
        codec.decode("", scope="s")


async def test_datetime_keys_page_in_utc_and_refuse_misfit_zones(tmp_path: Path) -> None:
    """On SQLite a timezone=True key pages through aware UTC values; an aware value for a
    column without a time zone is an invalid cursor."""
    metadata = sa.MetaData()
    events = sa.Table(
        "events",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local", sa.DateTime(), nullable=False),
    )
    start = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    db = Database(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/e.db")))
    await db.start()
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with db.session() as write:
            rows = [
                {"id": i, "at": start + dt.timedelta(minutes=i), "local": dt.datetime(2024, 5, 1)}
                for i in range(1, 8)
            ]
            await write.execute(sa.insert(events), rows)
        pager = Paginator(SECRET, sort=(events.c.at, events.c.id))
        pages = await _walk(db, pager, sa.select(events), limit=3)
        seen = [row.at for page in pages for row in page.items]
        assert seen == [(start + dt.timedelta(minutes=i)).astimezone(dt.UTC) for i in range(1, 8)]
        assert all(at.tzinfo is dt.UTC for at in seen)
        by_local = Paginator(SECRET, sort=(events.c.local, events.c.id))
        aware = by_local.encode((dt.datetime(2024, 5, 1, tzinfo=dt.UTC), 1))
        async with db.session(readonly=True) as read:
            with pytest.raises(InvalidCursor):
                await by_local.page(read, sa.select(events), cursor=aware)
    finally:
        await db.stop()
