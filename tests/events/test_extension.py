"""The events extension in an app: the store on the platform, a conflict as a 409 problem."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from tenfold import PlatformDep, create_app, platform_of
from tenfold.events import EventsExtension, EventStore, NewEvent
from tenfold.testing import app_client

router = APIRouter()


class Report(BaseModel):
    expected_version: int
    points: int


@router.post("/matches/{match_id}/scores")
async def report(match_id: str, body: Report, platform: PlatformDep) -> dict[str, Any]:
    store = platform.get(EventStore)
    appended = await store.append(
        f"match-{match_id}",
        [NewEvent("ScoreUpdated", {"points": body.points})],
        body.expected_version,
    )
    return {"version": appended.version}


async def test_conflicting_reports_get_one_winner_and_a_409(embedded_settings: Any) -> None:
    """Two reports at the same expected version: the second is a 409 problem with a request id."""
    app = create_app(
        embedded_settings, extensions=[EventsExtension()], routers=[router], configure_logs=False
    )
    async with app_client(app) as client:
        first = await client.post("/matches/7/scores", json={"expected_version": 0, "points": 1})
        assert first.status_code == 200
        assert first.json() == {"version": 1}
        second = await client.post("/matches/7/scores", json={"expected_version": 0, "points": 2})
        assert second.status_code == 409
        assert second.headers["content-type"].startswith("application/problem+json")
        problem = second.json()
        assert "is not at version 0" in problem["detail"]
        assert problem["type"] == "https://tenfold.dev/problems/concurrency-conflict"
        assert problem["expected_version"] == 0
        assert problem["actual_version"] == 1
        assert problem["request_id"]
        assert platform_of(app).events is platform_of(app).get(EventStore)
        events = await platform_of(app).events.read_stream("match-7")
        assert [e.data for e in events] == [{"points": 1}]
        assert events[0].metadata["request_id"] == first.headers["x-request-id"]
