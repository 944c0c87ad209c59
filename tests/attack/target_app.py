"""The app the attack run serves with `tenfold run`: writes, reads, a listing, a limited route."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert, select

from tenfold import NotFound, Platform, PlatformDep, create_app
from tenfold.cache import CacheDep
from tenfold.db import DbSession, ReadSession

metadata = MetaData()
items = Table(
    "attack_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
)
router = APIRouter()


class ItemIn(BaseModel):
    name: str


@router.post("/items", status_code=201)
async def add(item: ItemIn, session: DbSession) -> dict[str, Any]:
    made = await session.execute(insert(items).values(name=item.name))
    return {"id": made.inserted_primary_key[0]}


@router.get("/items/{item_id}")
async def get(item_id: int, session: ReadSession) -> dict[str, Any]:
    row = (await session.execute(select(items).where(items.c.id == item_id))).first()
    if row is None:
        raise NotFound(f"item {item_id} does not exist")
    return {"id": row.id, "name": row.name}


@router.get("/items")
async def listing(
    platform: PlatformDep, session: ReadSession, cursor: str | None = None
) -> dict[str, Any]:
    page = await platform.db.paginator(sort=(items.c.id,)).page(
        session, select(items), cursor=cursor, limit=2
    )
    return {"ids": [row.id for row in page.items], "next": page.next_cursor}


@router.get("/lookup/{number}")
async def lookup(number: int, cache: CacheDep) -> dict[str, Any]:
    async def load() -> int:
        return number

    return {"value": await cache.get_or_load(cache.key("lookup", number), load)}


@router.post("/limited/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}


async def create_tables(platform: Platform) -> None:
    async with platform.db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


app = create_app(routers=[router], on_startup=[create_tables])
