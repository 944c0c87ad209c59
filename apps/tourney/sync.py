"""``POST /api/sync``: the actions a page queued while offline, each applied once.

Each action carries an id its client made up. The result of each (``applied``,
``conflict`` with the match as it now is, or ``refused`` with why) is stored
under (user, action id), so a batch sent again (the connection dropped before
the answer arrived) reports ``duplicate`` with the first result and changes
nothing. Two deliveries racing each other cannot both apply a report either:
each report names the match version it was made on, and the first one moves it.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from apps.tourney.api import Int
from apps.tourney.schema import sync_actions
from apps.tourney.service import Tourney
from tenfold import (
    Conflict,
    IntegrityConflict,
    Principal,
    ProblemError,
    Unauthorized,
    Use,
    current_principal,
)
from tenfold.db import Database

__all__ = ["SyncIn", "apply_actions", "router"]

router = APIRouter(prefix="/api")


ActionId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: ActionId
    type: Literal["report_score"]
    match_id: Int = Field(ge=1, le=2**31 - 1)
    home: Int = Field(ge=0, le=999)
    away: Int = Field(ge=0, le=999)
    version: Int = Field(ge=0, le=2**31 - 1)


class SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actions: list[Action] = Field(min_length=1, max_length=100)


class ActionResult(BaseModel):
    id: str
    status: Literal["applied", "duplicate", "conflict", "refused"]
    match: dict[str, Any] | None = None
    detail: str | None = None


class SyncOut(BaseModel):
    results: list[ActionResult]


@router.post("/sync", tags=["sync"])
async def sync(body: SyncIn, tourney: Use[Tourney], db: Use[Database]) -> SyncOut:
    """Apply queued actions in order; one result per action."""
    principal = current_principal()
    if principal is None:
        raise Unauthorized("log in to sync")
    return SyncOut(results=await apply_actions(tourney, db, principal, body.actions))


async def apply_actions(
    tourney: Tourney, db: Database, principal: Principal, actions: list[Action]
) -> list[ActionResult]:
    results = []
    for action in actions:
        earlier = await _recorded(db, principal.id, action.id)
        if earlier is not None:
            results.append(ActionResult(**{**earlier, "status": "duplicate"}))
            continue
        result = await _apply(tourney, principal, action)
        await _record(db, principal.id, result)
        results.append(result)
    return results


async def _apply(tourney: Tourney, principal: Principal, action: Action) -> ActionResult:
    try:
        match = await tourney.report(
            action.match_id, action.home, action.away, action.version, principal
        )
    except Conflict as exc:  # a stale report, a final result, a lost race
        try:
            current = await tourney.current(action.match_id)
        except ProblemError:
            current = None
        return ActionResult(id=action.id, status="conflict", match=current, detail=exc.message)
    except ProblemError as exc:  # not theirs, no such match, not allowed
        return ActionResult(id=action.id, status="refused", detail=exc.message)
    return ActionResult(id=action.id, status="applied", match=match)


async def _recorded(db: Database, user_id: str, action_id: str) -> dict[str, Any] | None:
    async with db.session() as session:
        found = await session.execute(
            sa.select(sync_actions.c.result).where(
                sync_actions.c.user_id == user_id, sync_actions.c.action_id == action_id
            )
        )
        return found.scalar()


async def _record(db: Database, user_id: str, result: ActionResult) -> None:
    row = {
        "user_id": user_id,
        "action_id": result.id,
        "result": result.model_dump(),
        "applied_at": time.time(),
    }
    try:
        async with db.session() as session:
            await session.execute(sa.insert(sync_actions).values(**row))
    except IntegrityConflict:
        pass  # the same action, delivered twice at once, recorded by the other delivery
