"""apps/hello with background jobs, so `make run-prod` starts a worker for it.

``POST /jobs/notes`` enqueues ``add_note`` (202); the worker writes the note
and ``GET /jobs/notes?body=`` finds it on the primary once it has.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from sqlalchemy import insert, select

from apps.hello.main import create_tables as create_hello_tables
from apps.hello.main import notes
from apps.hello.main import router as hello_router
from tenfold import NotFound, Platform, create_app
from tenfold.db import DbSession
from tenfold.jobs import JobsExtension, Tasks, current_platform
from tenfold.jobs import create_tables as create_jobs_tables

tasks = Tasks()
router = APIRouter(prefix="/jobs")


@tasks.task
async def add_note(body: str) -> None:
    async with current_platform().db.session() as session:
        await session.execute(insert(notes).values(body=body))


@router.post("/notes", status_code=202)
async def enqueue_note(body: str) -> dict[str, str]:
    return {"job": await add_note.enqueue(body)}


@router.get("/notes")
async def find_note(body: str, session: DbSession) -> dict[str, int]:
    found = await session.scalar(select(notes.c.id).where(notes.c.body == body))
    if found is None:
        raise NotFound(f"no note {body!r} yet")
    return {"id": found}


async def create_tables(platform: Platform) -> None:
    await create_hello_tables(platform)
    await create_jobs_tables(platform.db)


def make_app() -> FastAPI:
    return create_app(
        routers=[hello_router, router],
        extensions=[JobsExtension(tasks=[tasks])],
        on_startup=[create_tables],
        title="hello with jobs",
    )
