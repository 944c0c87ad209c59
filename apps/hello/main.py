"""The smallest tenfold app: what `make run` serves until the flagship app lands.

It uses only tenfold's public API. Run it with `make run` (or `tenfold run`):
no configuration means the embedded profile, SQLite in ./var and no servers.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from tenfold import NotFound, Platform, create_app
from tenfold.db import DbSession, ReadSession

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("body", String(2000), nullable=False),
)

router = APIRouter(prefix="/notes", tags=["notes"])


class NoteIn(BaseModel):
    body: str = Field(min_length=1, max_length=2000)


class NoteOut(BaseModel):
    id: int
    body: str


@router.post("", status_code=201)
async def add_note(note: NoteIn, session: DbSession) -> NoteOut:
    note_id = (await session.execute(insert(notes).values(body=note.body))).inserted_primary_key[0]
    return NoteOut(id=note_id, body=note.body)


@router.get("/{note_id}")
async def get_note(note_id: int, session: ReadSession) -> NoteOut:
    row = (await session.execute(select(notes).where(notes.c.id == note_id))).first()
    if row is None:
        raise NotFound(f"note {note_id} does not exist")
    return NoteOut(id=row.id, body=row.body)


async def create_tables(platform: Platform) -> None:
    # A real app runs `tenfold db upgrade`; the demo keeps itself to one file.
    async with platform.db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


app = create_app(routers=[router], on_startup=[create_tables], title="tenfold hello")
