"""Brand Ranker's access rules, generated from its own OpenAPI document.

Two analysts (A and B) and an admin. Every operation of the API is visited:

- **BOLA**: B on A's objects (any route with an object id in its path) gets 404,
  exactly as for an object that does not exist, and A's object is unchanged;
- **BFLA**: a non-admin on an admin route gets 403;
- every write route refuses unknown fields, ``role``, ``owner_id`` and ``is_admin``
  among them, with 422 (no mass assignment), and no response exposes ``owner_id``.

A route added later without an entry in ``BODIES`` fails the matrix, so the
matrix keeps covering the whole API.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.brandranker.main import make_app
from tenfold.auth import Users

PASSWORD = "a long enough password"
UUID_FREE = "00000000-0000-4000-8000-000000000000"

#: A valid body per write operation (the matrix must reach the access check, not a 422).
BODIES: dict[str, Any] = {
    "POST /api/signup": {"username": "carol", "password": PASSWORD},
    "POST /api/experiments": {"name": "Sneakers", "brands": ["Nike", "Adidas"]},
    "PATCH /api/experiments/{experiment_id}": {"name": "Renamed"},
    "DELETE /api/experiments/{experiment_id}": None,
    "POST /api/experiments/{experiment_id}/ranking": None,
    "PUT /api/admin/users/{user_id}/roles": {"roles": ["admin"]},
    "POST /api/keys": {"name": "ci", "scopes": ["experiments:read"]},
    "DELETE /api/keys/{key_id}": None,
}
#: Fields no write body may set, whatever the route.
FORBIDDEN_FIELDS = ("role", "owner_id", "is_admin")


@dataclass
class World:
    client: httpx.AsyncClient
    app: Any
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    for name, value in {
        "TENFOLD_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/brandranker.db",
        "TENFOLD_APP__NAME": "brandranker",
        "TENFOLD_AUTH__PASSWORD_TIME_COST": "1",
        "TENFOLD_AUTH__PASSWORD_MEMORY_COST": "8",
        "TENFOLD_AUTH__PASSWORD_PARALLELISM": "1",
    }.items():
        monkeypatch.setenv(name, value)
    app = make_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://br.test") as client:
            for name in ("alice", "bob"):
                body = {"username": name, "password": PASSWORD}
                assert (await client.post("/api/signup", json=body)).status_code == 201
            admin = await app.state.tenfold.get(Users).create("root", PASSWORD, roles=["admin"])
            headers = {name: await bearer(client, name) for name in ("alice", "bob", "root")}
            made = await client.post(
                "/api/experiments", json=BODIES["POST /api/experiments"], headers=headers["alice"]
            )
            key = await client.post(
                "/api/keys", json=BODIES["POST /api/keys"], headers=headers["alice"]
            )
            ids = {
                "experiment_id": made.json()["id"],
                "key_id": key.json()["id"],
                "user_id": admin.id,
            }
            yield World(client, app, headers, ids)


async def bearer(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post("/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def operations(app: Any) -> list[tuple[str, str]]:
    """Every (method, path template) of the app's API under /api."""
    found = []
    for path, item in app.openapi()["paths"].items():
        if path.startswith("/api"):
            found += [(method.upper(), path) for method in item if method != "parameters"]
    return sorted(found)


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"{(\w+)}", lambda m: ids[m.group(1)], path)


async def call(world: World, method: str, path: str, who: str) -> httpx.Response:
    body = BODIES.get(f"{method} {path}")
    return await world.client.request(
        method, fill(path, world.ids), json=body, headers=world.headers[who]
    )


def problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"


async def test_every_write_operation_has_a_matrix_body(world: World) -> None:
    """The matrix covers the API: each write operation has a body here."""
    writes = {
        f"{m} {p}" for m, p in operations(world.app) if m in ("POST", "PUT", "PATCH", "DELETE")
    }
    assert writes == set(BODIES)


async def test_bola_another_users_objects_are_404(world: World) -> None:
    """B on each of A's objects: 404 like a missing object, and A's object is untouched."""
    visited = []
    for method, path in operations(world.app):
        if "{experiment_id}" not in path and "{key_id}" not in path:
            continue
        visited.append(f"{method} {path}")
        problem(await call(world, method, path, "bob"), 404)
        missing = dict(world.ids, experiment_id=UUID_FREE, key_id="nosuchkey")
        body = BODIES.get(f"{method} {path}")
        gone = await world.client.request(
            method, fill(path, missing), json=body, headers=world.headers["bob"]
        )
        problem(gone, 404)
    assert len(visited) >= 5
    own = await world.client.get(
        f"/api/experiments/{world.ids['experiment_id']}", headers=world.headers["alice"]
    )
    assert own.json()["name"] == "Sneakers"
    keys_still = await world.client.get("/api/experiments", headers={"X-API-Key": "x"})
    problem(keys_still, 401)


async def test_bfla_admin_routes_are_403_for_others(world: World) -> None:
    """Every admin operation: 403 for an analyst, allowed for the admin."""
    admin_ops = [(m, p) for m, p in operations(world.app) if p.startswith("/api/admin")]
    assert admin_ops
    for method, path in admin_ops:
        problem(await call(world, method, path, "alice"), 403)
        assert (await call(world, method, path, "root")).status_code == 200


async def test_the_admin_may_act_on_any_experiment(world: World) -> None:
    """The admin's ``*`` covers ``experiments:any``: another user's object is reachable."""
    response = await call(world, "GET", "/api/experiments/{experiment_id}", "root")
    assert response.status_code == 200


async def test_anonymous_callers_get_401_everywhere_but_signup(world: World) -> None:
    for method, path in operations(world.app):
        if path == "/api/signup":
            continue
        body = BODIES.get(f"{method} {path}")
        response = await world.client.request(method, fill(path, world.ids), json=body)
        problem(response, 401)


@pytest.mark.parametrize("field", FORBIDDEN_FIELDS)
async def test_mass_assignment_is_422_on_every_write(world: World, field: str) -> None:
    """A body naming ``role``, ``owner_id`` or ``is_admin`` is refused on every write route."""
    for key, body in BODIES.items():
        if body is None:
            continue
        method, path = key.split(" ", 1)
        who = "root" if path.startswith("/api/admin") else "alice"
        response = await world.client.request(
            method,
            fill(path, world.ids),
            json={**body, field: "admin" if field == "role" else True},
            headers=world.headers[who],
        )
        problem(response, 422)


async def test_responses_never_expose_internal_fields(world: World) -> None:
    listed = await world.client.get("/api/experiments", headers=world.headers["alice"])
    (experiment,) = listed.json()
    assert set(experiment) == {"id", "name", "brands", "created_at"}
    schema = world.app.openapi()["components"]["schemas"]
    assert "owner_id" not in schema["ExperimentOut"]["properties"]


async def test_an_api_key_acts_for_its_owner_within_its_scopes(world: World) -> None:
    made = await world.client.post(
        "/api/keys",
        json={"name": "reader", "scopes": ["experiments:read"]},
        headers=world.headers["alice"],
    )
    key = {"X-API-Key": made.json()["key"]}
    listed = await world.client.get("/api/experiments", headers=key)
    assert [e["id"] for e in listed.json()] == [world.ids["experiment_id"]]
    problem(
        await world.client.post(
            "/api/experiments", json=BODIES["POST /api/experiments"], headers=key
        ),
        403,
    )
    revoked = await world.client.delete(
        f"/api/keys/{made.json()['id']}", headers=world.headers["alice"]
    )
    assert revoked.status_code == 204
    problem(await world.client.get("/api/experiments", headers=key), 401)
