"""A tiny app for the idempotency tests, run by uvicorn in its own process.

``POST /orders`` inserts a row, writes ``<gate>/reached``, then waits while
``<gate>/block`` exists, so a test can SIGKILL the process mid-request with
the row written but not committed. ``X-User`` stands in for authentication.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, SecretStr

from tenfold import DatabaseSettings, set_principal
from tenfold.db import Database
from tenfold.idempotency import PROBLEMS, IdempotentRoute, IdempotentSession, create_table
from tenfold.testing import attach_platform
from tenfold.web import ProblemRegistry, install_problem_handlers

GATE = Path(os.environ["TF_IDEM_TEST_GATE"])
db = Database(
    DatabaseSettings(
        url=SecretStr(os.environ["TF_IDEM_TEST_DB"]),
        pool_timeout=2.0,
        cursor_secret=SecretStr("idempotency-test-cursor-secret"),
    )
)


class OrderIn(BaseModel):
    item: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await db.start()
    await create_table(db)
    yield
    await db.stop()


app = FastAPI(lifespan=lifespan)
attach_platform(app, db)
install_problem_handlers(app, ProblemRegistry(PROBLEMS))
router = APIRouter(route_class=IdempotentRoute)


@app.middleware("http")
async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
    set_principal(request.headers.get("x-user"))
    return await call_next(request)


@app.get("/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


@router.post("/orders", status_code=201)
async def add_order(
    body: OrderIn, session: IdempotentSession, response: Response
) -> dict[str, Any]:
    order_id = await session.scalar(
        sa.text("INSERT INTO orders (item) VALUES (:item) RETURNING id"), {"item": body.item}
    )
    await session.flush()
    (GATE / "reached").touch()
    # The test releases the handler from another process, so no Event can reach it.
    while (GATE / "block").exists():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    response.headers["X-Order-Id"] = str(order_id)
    return {"id": order_id, "item": body.item}


app.include_router(router)
