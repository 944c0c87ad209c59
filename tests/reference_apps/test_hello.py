"""The example app (apps/hello), driven as a client would, with tenfold.testing's app client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from apps.hello.main import build
from tenfold import Settings
from tenfold.testing import app_client

CLIENT = {"X-API-Key": "test-client"}


@pytest.fixture
async def client(embedded_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The example app on an empty embedded database."""
    async with app_client(build(embedded_settings), headers=CLIENT) as client:
        yield client


async def test_a_retried_post_is_answered_once_and_writes_once(client: httpx.AsyncClient) -> None:
    """The same Idempotency-Key replays the first response; the note exists once."""
    headers = {"Idempotency-Key": "note-1"}
    first = await client.post("/notes", json={"body": "hello"}, headers=headers)
    retry = await client.post("/notes", json={"body": "hello"}, headers=headers)
    other = await client.post("/notes", json={"body": "hello"}, headers={"Idempotency-Key": "n-2"})
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert other.json()["id"] == first.json()["id"] + 1


async def test_a_post_without_a_key_is_refused_with_a_problem(client: httpx.AsyncClient) -> None:
    """Writes need an Idempotency-Key: without one the answer is a 400 problem."""
    refused = await client.post("/notes", json={"body": "hello"})
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in refused.json()["detail"]


async def test_a_note_read_before_it_existed_is_served_once_created(
    client: httpx.AsyncClient,
) -> None:
    """The cached "no such note" is invalidated when the note's transaction commits."""
    assert (await client.get("/notes/1")).status_code == 404
    assert (await client.get("/notes/1")).status_code == 404  # now from the cache
    made = await client.post("/notes", json={"body": "late"}, headers={"Idempotency-Key": "k"})
    assert made.json() == {"id": 1, "body": "late"}
    found = await client.get("/notes/1")
    assert found.status_code == 200
    assert found.json() == {"id": 1, "body": "late"}
