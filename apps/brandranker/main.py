"""Brand Ranker: experiments that rank brands, behind tenfold's identity and access.

The Brand Ranker plan's API layer on tenfold's public API only: short-lived JWTs
with rotating refresh tokens (``/auth/token``, ``/auth/refresh``), API keys for
service calls, roles and per-user rate limits. Run it with
``tenfold run --app apps.brandranker.main:make_app``.

- ``POST /api/signup`` creates an analyst; a body naming ``role``, ``owner_id`` or
  ``is_admin`` (or any field the model does not declare) is a 422.
- ``/api/experiments`` are owned: another user's experiment is a 404 on every
  route, never a 403, so its existence does not leak.
- ``/api/admin/...`` needs the ``users:admin`` permission (403 without it).
- ``POST /api/keys`` makes an API key with scopes, shown once.

The ranking itself stands in for the plan's LLM call: a deterministic score per
brand, so the app runs without an upstream.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Column, Float, MetaData, String, Table, delete, insert, select, update

from tenfold import CoreSettings, Platform, Principal, Use, create_app
from tenfold.auth import Access, ApiKeys, AuthExtension, Users, owned, require
from tenfold.db import DbSession, ReadSession
from tenfold.ratelimit import Policy, RateLimits, Rule, by_user

__all__ = ["ROLES", "make_app", "metadata"]

#: Each role's permissions. An analyst works on their own experiments and keys; an admin
#: may do anything, other users' experiments included.
ROLES = {
    "analyst": ["experiments:read", "experiments:write", "keys:manage"],
    "admin": ["*"],
}

metadata = MetaData()
experiments = Table(
    "brandranker_experiments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("brands", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

ExperimentId = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$")]
UserId = Annotated[str, Path(min_length=1, max_length=64)]
KeyId = Annotated[str, Path(min_length=1, max_length=64)]
Brand = Annotated[str, Field(min_length=1, max_length=100)]


class _In(BaseModel):
    """Write bodies: a field the model does not declare is a 422 (no mass assignment)."""

    model_config = ConfigDict(extra="forbid")


class SignUp(_In):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=10, max_length=256)


class UserOut(BaseModel):
    id: str
    username: str
    roles: list[str]


class ExperimentIn(_In):
    name: str = Field(min_length=1, max_length=200)
    brands: list[Brand] = Field(min_length=1, max_length=20)


class ExperimentPatch(_In):
    name: str | None = Field(None, min_length=1, max_length=200)
    brands: list[Brand] | None = Field(None, min_length=1, max_length=20)


class ExperimentOut(BaseModel):
    """What clients see of an experiment: never its owner column or other internals."""

    id: str
    name: str
    brands: list[str]
    created_at: float


class Ranked(BaseModel):
    brand: str
    score: float
    rank: int


class RankingOut(BaseModel):
    experiment_id: str
    ranking: list[Ranked]


class RolesIn(_In):
    roles: list[Annotated[str, Field(pattern=r"^(analyst|admin)$")]] = Field(max_length=2)


class KeyIn(_In):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Annotated[str, Field(pattern=r"^experiments:(read|write)$")]] = Field(
        min_length=1, max_length=2
    )


class KeyOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    key: str | None = Field(None, description="The secret, shown only when the key is made.")


Caller = Annotated[Principal, Depends(require("experiments:read"))]
Writer = Annotated[Principal, Depends(require("experiments:write"))]
Admin = Annotated[Principal, Depends(require("users:admin"))]
KeyManager = Annotated[Principal, Depends(require("keys:manage"))]

router = APIRouter(prefix="/api")


@router.post("/signup", status_code=201, tags=["users"])
async def signup(body: SignUp, users: Use[Users]) -> UserOut:
    """Create an analyst account; log in with ``POST /auth/token``."""
    user = await users.create(body.username, body.password, roles=["analyst"])
    return UserOut(id=user.id, username=user.username, roles=sorted(user.roles))


@router.post("/experiments", status_code=201, tags=["experiments"])
async def create_experiment(
    body: ExperimentIn, principal: Writer, session: DbSession
) -> ExperimentOut:
    row = {
        "id": str(uuid.uuid4()),
        "owner_id": principal.id,
        "name": body.name,
        "brands": body.brands,
        "created_at": time.time(),
    }
    await session.execute(insert(experiments).values(**row))
    return _out(row)


@router.get("/experiments", tags=["experiments"])
async def list_experiments(principal: Caller, session: ReadSession) -> list[ExperimentOut]:
    """The caller's own experiments, newest first."""
    query = (
        select(experiments)
        .where(experiments.c.owner_id == principal.id)
        .order_by(experiments.c.created_at.desc())
        .limit(100)
    )
    return [_out(row._mapping) for row in (await session.execute(query))]


@router.get("/experiments/{experiment_id}", tags=["experiments"])
async def get_experiment(
    experiment_id: ExperimentId, principal: Caller, session: ReadSession, access: Use[Access]
) -> ExperimentOut:
    return _out(await _owned(session, access, principal, experiment_id))


@router.patch("/experiments/{experiment_id}", tags=["experiments"])
async def change_experiment(
    experiment_id: ExperimentId,
    body: ExperimentPatch,
    principal: Writer,
    session: DbSession,
    access: Use[Access],
) -> ExperimentOut:
    row = dict(await _owned(session, access, principal, experiment_id))
    changes = body.model_dump(exclude_none=True)
    if changes:
        await session.execute(
            update(experiments).where(experiments.c.id == experiment_id).values(**changes)
        )
        row.update(changes)
    return _out(row)


@router.delete("/experiments/{experiment_id}", status_code=204, tags=["experiments"])
async def delete_experiment(
    experiment_id: ExperimentId, principal: Writer, session: DbSession, access: Use[Access]
) -> None:
    await _owned(session, access, principal, experiment_id)
    await session.execute(delete(experiments).where(experiments.c.id == experiment_id))


@router.post("/experiments/{experiment_id}/ranking", tags=["experiments"])
async def rank(
    experiment_id: ExperimentId, principal: Caller, session: ReadSession, access: Use[Access]
) -> RankingOut:
    """Rank the experiment's brands (a deterministic stand-in for the LLM call)."""
    row = await _owned(session, access, principal, experiment_id)
    scores = {brand: _score(row["name"], brand) for brand in row["brands"]}
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    ranking = [Ranked(brand=b, score=s, rank=i + 1) for i, (b, s) in enumerate(ordered)]
    return RankingOut(experiment_id=experiment_id, ranking=ranking)


@router.get("/admin/users", tags=["admin"])
async def list_users(_: Admin, users: Use[Users]) -> list[UserOut]:
    return [
        UserOut(id=u.id, username=u.username, roles=sorted(u.roles))
        for u in await users.list(limit=200)
    ]


@router.put("/admin/users/{user_id}/roles", tags=["admin"])
async def set_roles(user_id: UserId, body: RolesIn, _: Admin, users: Use[Users]) -> UserOut:
    user = await users.set_roles(user_id, body.roles)
    return UserOut(id=user.id, username=user.username, roles=sorted(user.roles))


@router.post("/keys", status_code=201, tags=["keys"])
async def create_key(body: KeyIn, principal: KeyManager, keys: Use[ApiKeys]) -> KeyOut:
    """An API key acting for the caller with ``scopes``; the secret is shown once."""
    made = await keys.create(principal.id, name=body.name, scopes=body.scopes)
    record = made.record
    return KeyOut(id=record.id, name=record.name, scopes=sorted(record.scopes), key=made.key)


@router.delete("/keys/{key_id}", status_code=204, tags=["keys"])
async def revoke_key(key_id: KeyId, principal: KeyManager, keys: Use[ApiKeys]) -> None:
    """Revoke one of the caller's keys (another user's is a 404)."""
    mine = {record.id for record in await keys.list(principal.id)}
    await owned(key_id if key_id in mine else None, principal, owner=lambda _: principal.id)
    await keys.revoke(key_id)


async def _owned(session: Any, access: Access, principal: Principal, experiment_id: str) -> Any:
    found = (
        await session.execute(select(experiments).where(experiments.c.id == experiment_id))
    ).first()
    row = found._mapping if found is not None else None
    return await owned(
        row,
        principal,
        owner=lambda r: r["owner_id"],
        permission="experiments:any",
        access=access,
    )


def _out(row: Any) -> ExperimentOut:
    return ExperimentOut(
        id=row["id"], name=row["name"], brands=list(row["brands"]), created_at=row["created_at"]
    )


def _score(name: str, brand: str) -> float:
    digest = hashlib.sha256(f"{name}\x00{brand}".encode()).digest()
    return round(int.from_bytes(digest[:4], "big") / 2**32, 6)


async def _create_tables(platform: Platform) -> None:
    from tenfold.auth import create_tables as create_auth_tables
    from tenfold.db import Database

    db = platform.get(Database)
    async with db.session() as session:
        await session.run_sync(lambda s: metadata.create_all(s.connection()))
    # The auth extension makes its own tables only on embedded SQLite; on PostgreSQL a real
    # app migrates them (`tenfold db upgrade`), the demo creates them here.
    await create_auth_tables(db)


#: The plan's per-user limit: 100 requests a minute on the API.
RATE_LIMITS = RateLimits(
    prefixes={"/api": Policy(name="api-per-user", key=by_user(), rules=[Rule("100/minute")])}
)


def make_app(settings: CoreSettings | None = None) -> FastAPI:
    """The app; ``settings`` default to the environment (``TENFOLD_*``)."""
    return create_app(
        settings,
        extensions=[AuthExtension(roles=ROLES)],
        routers=[router],
        rate_limits=RATE_LIMITS,
        on_startup=[_create_tables],
        title="Brand Ranker",
    )
