"""Read-your-writes over HTTP: the token header/cookie and the FastAPI dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from tenfold._context import current_consistency_token
from tenfold.db import (
    ConsistencyMiddleware,
    Database,
    DbSession,
    ReadSession,
    format_token,
    parse_token,
)
from tenfold.testing import PgCluster, attach_platform
from tenfold.web import install_problem_handlers

from .conftest import MakeDatabase

HEADER = "X-Consistency-Token"


def test_tokens_are_postgres_lsn_text() -> None:
    """Tokens are LSNs in PostgreSQL's HEX/HEX form and parse back to the same int."""
    assert format_token(0x16B374D848) == "16/B374D848"
    assert parse_token("16/B374D848") == 0x16B374D848
    assert parse_token(b"0/0") == 0
    for lsn in (0, 1, 2**32, 2**64 - 1):
        assert parse_token(format_token(lsn)) == lsn


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "16",
        "16/",
        "/1",
        "16/B374D848 ",
        "0x16/1",
        "123456789/0",
        "g/1",
        "1/2/3",
        "\u0661/\u0661",
        None,
    ],
)
def test_garbage_tokens_are_ignored(garbage: str | None) -> None:
    """Anything but exactly HEX/HEX (1-8 digits each) parses to None."""
    assert parse_token(garbage) is None


def _app(db: Database) -> FastAPI:
    app = FastAPI()
    attach_platform(app, db)
    install_problem_handlers(app)

    @app.post("/notes")
    async def add(session: DbSession) -> dict[str, int]:
        note_id = await session.scalar(
            sa.text("INSERT INTO notes (body) VALUES ('rw') RETURNING id")
        )
        return {"id": note_id}

    @app.get("/notes/{note_id}")
    async def read(note_id: int, session: ReadSession) -> dict[str, object]:
        body = await session.scalar(sa.text("SELECT body FROM notes WHERE id = :i"), {"i": note_id})
        replica = await session.scalar(sa.text("SELECT pg_is_in_recovery()"))
        return {"body": body, "replica": replica, "token": current_consistency_token()}

    app.add_middleware(ConsistencyMiddleware, header=HEADER, cookie="tenfold_ct")
    return app


@pytest.fixture
async def client(make_database: MakeDatabase) -> AsyncIterator[httpx.AsyncClient]:
    db = await make_database(stale_reads="replica")
    transport = httpx.ASGITransport(app=_app(db))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_a_write_returns_the_token_and_the_next_read_honours_it(
    client: httpx.AsyncClient, pg_cluster: PgCluster
) -> None:
    """The writer's next request (header or cookie) reads its write; a stranger's is stale."""
    pg_cluster.pause_replay()
    try:
        created = await client.post("/notes")
        assert created.status_code == 200
        token = created.headers[HEADER]
        assert parse_token(token) is not None
        assert f"tenfold_ct={token}" in created.headers["set-cookie"]
        assert "HttpOnly" in created.headers["set-cookie"]
        note = created.json()["id"]

        by_cookie = await client.get(f"/notes/{note}")  # the client kept the cookie
        assert by_cookie.json() == {"body": "rw", "replica": False, "token": parse_token(token)}
        assert HEADER not in by_cookie.headers  # a read raises nothing, so nothing is sent

        client.cookies.clear()
        by_header = await client.get(f"/notes/{note}", headers={HEADER: token})
        assert by_header.json()["body"] == "rw"

        stranger = await client.get(f"/notes/{note}")
        assert stranger.json() == {"body": None, "replica": True, "token": None}

        garbage = await client.get(f"/notes/{note}", headers={HEADER: "not-a-token"})
        assert garbage.json()["token"] is None
    finally:
        pg_cluster.resume_replay()


async def test_a_failed_write_rolls_back_and_sends_no_token(client: httpx.AsyncClient) -> None:
    """A request whose endpoint raises gets a problem response and no token."""
    app = client._transport.app  # type: ignore[attr-defined]

    @app.post("/broken")
    async def broken(session: DbSession) -> None:
        await session.execute(sa.text("INSERT INTO notes (body) VALUES ('never')"))
        await session.execute(sa.text("INSERT INTO items VALUES (1, 'dup', 0)"))

    response = await client.post("/broken")
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert HEADER not in response.headers
