"""The context that travels: one variable per concern, snapshot() and restore()."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends

from tenfold import (
    ContextSnapshot,
    Principal,
    create_app,
    current_causation_id,
    current_consistency_token,
    current_correlation_id,
    current_principal,
    current_request_id,
    current_traceparent,
    current_user_id,
    restore,
    set_principal,
    snapshot,
)
from tenfold._context import set_consistency_token

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

pytestmark = pytest.mark.usefixtures("clean_env")


def test_outside_any_work_everything_is_empty() -> None:
    """With nothing bound, every concern reads None and a snapshot is empty."""
    assert snapshot() == ContextSnapshot()
    assert current_principal() is None
    assert current_correlation_id() is None


def test_restore_binds_every_concern_and_puts_the_old_ones_back() -> None:
    """restore() makes a snapshot current inside the block only."""
    alice = Principal("alice", roles={"organiser"}, scopes={"matches:write"})
    snap = ContextSnapshot("r-1", alice, "c-1", "m-1", 42, TRACEPARENT)
    with restore(snap):
        assert current_request_id() == "r-1"
        assert current_principal() == alice
        assert current_user_id() == "alice"
        assert current_correlation_id() == "c-1"
        assert current_causation_id() == "m-1"
        assert current_consistency_token() == 42
        assert current_traceparent() == TRACEPARENT
        assert snapshot() == snap
        with restore(ContextSnapshot("r-2")):
            assert current_principal() is None
            assert current_correlation_id() == "r-2"  # defaults to the request id
        assert current_request_id() == "r-1"
    assert snapshot() == ContextSnapshot()


def test_consistency_floor_only_rises() -> None:
    """set_consistency_token raises the floor; a lower LSN never lowers it."""
    with restore(ContextSnapshot("r", consistency_lsn=10)):
        set_consistency_token(5)
        assert current_consistency_token() == 10
        set_consistency_token(20)
        assert current_consistency_token() == 20


async def test_tasks_inherit_a_copy() -> None:
    """A task started inside restore() sees the context; its own changes stay its own."""
    seen: list[Any] = []

    async def child() -> None:
        seen.append(current_request_id())
        with restore(ContextSnapshot("child")):
            seen.append(current_request_id())

    with restore(ContextSnapshot("parent")):
        await asyncio.create_task(child())
        assert current_request_id() == "parent"
    assert seen == ["parent", "child"]


def test_snapshot_round_trips_through_a_dict() -> None:
    """to_dict()/from_dict() carry a snapshot across a process boundary (a job's headers)."""
    snap = ContextSnapshot("r-1", Principal("bob", scopes={"read"}), "c", "m", 7, TRACEPARENT)
    assert ContextSnapshot.from_dict(snap.to_dict()) == snap


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_id", "bad id with spaces"),
        ("correlation_id", "x" * 200),
        ("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        ("traceparent", "not-a-traceparent"),
        ("consistency_lsn", -1),
    ],
)
def test_from_dict_drops_what_is_not_valid(field: str, value: Any) -> None:
    """Ids that could forge log lines and malformed trace contexts are dropped, not trusted."""
    assert getattr(ContextSnapshot.from_dict({field: value}), field) is None


def test_headers_never_carry_the_principal() -> None:
    """to_headers() carries ids and the trace context, never who is acting."""
    headers = ContextSnapshot("r", Principal("alice"), "c", "m", 1, TRACEPARENT).to_headers()
    assert headers == {
        "X-Request-ID": "r",
        "X-Correlation-ID": "c",
        "X-Causation-ID": "m",
        "traceparent": TRACEPARENT,
    }


def test_a_plain_string_is_a_principal_id() -> None:
    """Principal.of accepts a str as the id; anything else is a TypeError."""
    assert Principal.of("alice") == Principal("alice")
    assert Principal.of(None) is None
    with pytest.raises(TypeError):
        Principal.of(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        Principal("")


async def test_request_context_from_headers_and_a_sync_auth_dependency() -> None:
    """Incoming ids are bound; a principal set in a sync dependency's thread reaches the log."""
    router = APIRouter()

    def user() -> None:
        set_principal(Principal("carol", roles={"viewer"}))  # runs in a worker thread

    @router.get("/ctx", dependencies=[Depends(user)])
    async def ctx() -> dict[str, Any]:
        snap = snapshot()
        return {
            "request_id": snap.request_id,
            "correlation_id": snap.correlation_id,
            "traceparent": snap.traceparent,
            "principal": snap.principal.to_dict() if snap.principal else None,
        }

    app = create_app(routers=[router], configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = (
                await client.get(
                    "/ctx",
                    headers={
                        "X-Request-ID": "req-1",
                        "X-Correlation-ID": "flow-9",
                        "traceparent": TRACEPARENT,
                    },
                )
            ).json()
            bad = (
                await client.get("/ctx", headers={"X-Correlation-ID": "a b", "traceparent": "junk"})
            ).json()
    assert body["request_id"] == "req-1"
    assert body["correlation_id"] == "flow-9"
    assert body["traceparent"] == TRACEPARENT
    assert body["principal"]["id"] == "carol"
    assert bad["correlation_id"] == bad["request_id"]  # invalid: the request id instead
    assert bad["traceparent"] is None
