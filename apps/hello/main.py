"""The smallest tenfold app: what `make run` serves until the flagship app lands.

It uses only tenfold's public API. Run it with `make run` (or `tenfold run`):
no configuration means the embedded profile, SQLite in ./var and no servers.

- ``POST /notes`` is idempotent: a retry with the same ``Idempotency-Key``
  gets the first response back (``Idempotent-Replayed: true``) and writes
  nothing twice. Keys are scoped per client, here by ``X-API-Key``.
- ``GET /notes/{id}`` reads through the cache, tagged ``note:{id}``. A read of
  a note that does not exist yet is cached too (a negative entry), so the
  POST invalidates the new note's tag once its transaction has committed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Path
from pydantic import BaseModel, Field
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from tenfold import NotFound, Platform, Settings, create_app
from tenfold.cache import CacheDep
from tenfold.db import ReadSession
from tenfold.idempotency import IdempotentRoute, IdempotentSession
from tenfold.idempotency import create_table as create_idempotency_table

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("body", String(2000), nullable=False),
)

router = APIRouter(prefix="/notes", tags=["notes"], route_class=IdempotentRoute)
# The id column's range (INTEGER on PostgreSQL), so the API document says which ids exist
# and a larger one is a 422 naming the field rather than a value the database refuses.
NoteId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class NoteIn(BaseModel):
    body: str = Field(min_length=1, max_length=2000)


class NoteOut(BaseModel):
    id: int
    body: str


@router.post("", status_code=201)
async def add_note(note: NoteIn, session: IdempotentSession, cache: CacheDep) -> NoteOut:
    note_id = (await session.execute(insert(notes).values(body=note.body))).inserted_primary_key[0]
    # Only once the row is committed: invalidating earlier would let a concurrent
    # read cache "no such note" again before the commit.
    session.after_commit(lambda: cache.invalidate_tags(f"note:{note_id}"))
    return NoteOut(id=note_id, body=note.body)


@router.get("/{note_id}")
async def get_note(note_id: NoteId, session: ReadSession, cache: CacheDep) -> NoteOut:
    async def load() -> dict[str, object] | None:
        row = (await session.execute(select(notes).where(notes.c.id == note_id))).first()
        return None if row is None else {"id": row.id, "body": row.body}

    found = await cache.get_or_load(cache.key("note", note_id), load, tags=[f"note:{note_id}"])
    if found is None:
        raise NotFound(f"note {note_id} does not exist")
    return NoteOut.model_validate(found)


async def create_tables(platform: Platform) -> None:
    # A real app runs `tenfold db upgrade`; the demo keeps itself to one file.
    async with platform.db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await create_idempotency_table(platform.db)


def build(settings: Settings | None = None) -> FastAPI:
    """The app over ``settings`` (by default the environment's)."""
    return create_app(settings, routers=[router], on_startup=[create_tables], title="tenfold hello")


app = build()
