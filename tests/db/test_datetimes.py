"""``DateTime(timezone=True)`` values are aware and in UTC on both profiles, to the JSON byte."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel

from tenfold import Settings
from tenfold.db import DbSession, ReadSession
from tenfold.testing import PgCluster

from .conftest import pg_app_settings, serving, sqlite_app_settings

metadata = sa.MetaData()
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("local", sa.DateTime(), nullable=False),
)

# 12:30 in UTC+02:00: the instant 10:30 UTC.
AT = "2024-05-01T12:30:00.123456+02:00"
LOCAL = "2024-05-01T12:30:00"


class EventIn(BaseModel):
    id: int
    at: dt.datetime
    local: dt.datetime


class EventOut(EventIn):
    pass


def _router() -> APIRouter:
    router = APIRouter()

    @router.post("/events", status_code=201)
    async def add(event: EventIn, session: DbSession) -> None:
        await session.execute(sa.insert(events).values(**event.model_dump()))

    @router.get("/events/{event_id}")
    async def get(event_id: int, session: ReadSession) -> EventOut:
        row = (await session.execute(sa.select(events).where(events.c.id == event_id))).one()
        return EventOut.model_validate(row._mapping)

    @router.get("/events")
    async def since(after: dt.datetime, session: ReadSession) -> list[int]:
        stmt = sa.select(events.c.id).where(events.c.at > after).order_by(events.c.id)
        return list((await session.scalars(stmt)).all())

    return router


async def _exercise(settings: Settings) -> dict[str, Any]:
    """Store an event, read it back as JSON, and filter by instants around it."""
    async with serving(settings, [_router()], metadata) as client:
        created = await client.post("/events", json={"id": 1, "at": AT, "local": LOCAL})
        assert created.status_code == 201, created.text
        read = await client.get("/events/1")
        # The same instants written two ways: UTC, and UTC-05:00.
        before = await client.get("/events", params={"after": "2024-05-01T10:29:59Z"})
        after = await client.get("/events", params={"after": "2024-05-01T05:30:01-05:00"})
    return {"text": read.text, "before": before.json(), "after": after.json(), "read": read}


async def test_datetimes_round_trip_to_the_same_json_on_both_profiles(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """A timezone=True value comes back aware in UTC, serialised identically on both profiles."""
    name = pg_cluster.create_database()
    try:
        on_postgres = await _exercise(pg_app_settings(pg_cluster, name))
    finally:
        pg_cluster.drop_database(name)
    on_sqlite = await _exercise(sqlite_app_settings(tmp_path))
    assert on_sqlite["text"] == on_postgres["text"]
    read: httpx.Response = on_sqlite["read"]
    assert read.json() == {"id": 1, "at": "2024-05-01T10:30:00.123456Z", "local": LOCAL}
    # Compared as instants on both: the stored value is 10:30 UTC, not 12:30.
    assert on_sqlite["before"] == on_postgres["before"] == [1]
    assert on_sqlite["after"] == on_postgres["after"] == []
