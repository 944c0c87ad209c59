"""Values that do not fit their column are the client's 422, alike on SQLite and PostgreSQL.

Each test runs a real app (``create_app``) on both profiles. Logs are
captured: no bound value ever reaches them, only the statement and SQLSTATE.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import JSONB

from tenfold import NotFound, ObservabilitySettings, Settings
from tenfold.cache import cached
from tenfold.db import DbSession, ReadSession
from tenfold.observability import configure_logging, flush_logs, reset_logging

from .conftest import serving

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("meta", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True),
)

BIG_INT = 2**64 + 1
NUL_MARKER = "nul-marker-7f3a"
ROW_MARKER = "row-marker-c41e"


class ThingIn(BaseModel):
    id: int
    body: str
    label: str | None = None
    meta: dict[str, Any] | None = None


@cached(namespace="bad_data")
async def echo_number(n: int) -> dict[str, int]:
    return {"n": n, "next": n + 1}


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def get_thing(thing_id: int, session: ReadSession) -> dict[str, Any]:
        row = (await session.execute(sa.select(things).where(things.c.id == thing_id))).first()
        if row is None:
            raise NotFound(f"no thing {thing_id}")
        return {"id": row.id, "body": row.body}

    @router.post("/things", status_code=201)
    async def add_thing(thing: ThingIn, session: DbSession) -> dict[str, int]:
        await session.execute(sa.insert(things).values(**thing.model_dump()))
        return {"id": thing.id}

    @router.get("/numbers/{n}")
    async def number(n: int) -> dict[str, int]:
        return await echo_number(n)

    return router


@pytest.fixture
def log_text() -> Iterator[Callable[[], str]]:
    """JSON logs into memory; the fixture's value returns the server's lines but access lines."""
    buffer = io.BytesIO()
    configure_logging(ObservabilitySettings(), console=False, stream=buffer)

    def text() -> str:
        flush_logs()
        lines = [orjson.loads(line) for line in buffer.getvalue().splitlines()]
        # The access line records the path the client chose, and httpx logs the test's own
        # requests: neither is what the server did with the values.
        kept = [
            line for line in lines if line.get("event") != "request" and line["logger"] != "httpx"
        ]
        return "\n".join(str(line) for line in kept)

    yield text
    reset_logging()


def _is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers["content-type"] == "application/problem+json"
        and response.json()["status"] == status
    )


async def test_out_of_range_integers_are_422(app_settings: Settings, log_text: Any) -> None:
    """An id beyond the column's integer range is a 422 problem, never a 500, on both profiles."""
    async with serving(app_settings, [_router()], metadata) as client:
        beyond_int64 = await client.get("/things/9223372036854775808")
        beyond_int32 = await client.get("/things/2147483648")
    assert _is_problem(beyond_int64, 422), beyond_int64.text
    body = beyond_int64.json()
    assert body["type"] == "https://tenfold.dev/problems/invalid-data"
    assert "9223372036854775808" not in beyond_int64.text
    assert "OverflowError" not in beyond_int64.text
    assert "SQLSTATE" not in beyond_int64.text
    if app_settings.db.is_sqlite:  # SQLite's INTEGER is 64 bits: 2**31 is just not there
        assert _is_problem(beyond_int32, 404)
    else:
        assert _is_problem(beyond_int32, 422), beyond_int32.text
    logs = log_text()
    assert "9223372036854775808" not in logs
    assert "2147483648" not in logs


async def test_nul_characters_are_422_or_stored(app_settings: Settings, log_text: Any) -> None:
    """Text with NUL (in a text and a JSON column) is a 422 on PostgreSQL, stored by SQLite."""
    nul_text = f"a\u0000{NUL_MARKER}"
    async with serving(app_settings, [_router()], metadata) as client:
        in_text = await client.post("/things", json={"id": 1, "body": nul_text, "label": "x"})
        in_json = await client.post(
            "/things", json={"id": 2, "body": "b", "label": "x", "meta": {"k": nul_text}}
        )
    for response in (in_text, in_json):
        if app_settings.db.is_sqlite:
            assert response.status_code == 201, response.text
        else:
            assert _is_problem(response, 422), response.text
            assert response.json()["type"] == "https://tenfold.dev/problems/invalid-data"
            assert NUL_MARKER not in response.text
    assert NUL_MARKER not in log_text()


async def test_cached_functions_take_integers_beyond_64_bits(
    app_settings: Settings, log_text: Any
) -> None:
    """A @cached function called with an int beyond 64 bits caches and returns it exactly."""
    async with serving(app_settings, [_router()], metadata) as client:
        first = await client.get(f"/numbers/{BIG_INT}")
        again = await client.get(f"/numbers/{BIG_INT}")
    assert first.status_code == 200, first.text
    assert first.json() == again.json() == {"n": BIG_INT, "next": BIG_INT + 1}
    assert "error" not in log_text()


async def test_refused_rows_are_logged_without_their_values(
    app_settings: Settings, log_text: Any
) -> None:
    """A statement the database refuses (NOT NULL) logs its SQL and SQLSTATE, never the row."""
    async with serving(app_settings, [_router()], metadata) as client:
        refused = await client.post("/things", json={"id": 3, "body": ROW_MARKER})
    assert _is_problem(refused, 500)
    assert ROW_MARKER not in refused.text
    logs = log_text()
    assert "internal_error" in logs
    assert "INSERT INTO things" in logs  # the statement's shape is there to debug with
    if not app_settings.db.is_sqlite:
        assert "23502" in logs  # not_null_violation
    assert ROW_MARKER not in logs
