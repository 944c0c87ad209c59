"""An attack run against a real `tenfold run` process on the harness PostgreSQL and Redis.

Spoofed client addresses, bad bytes, forged cursors, oversized bodies, control
characters for the logs and a Redis outage, each answered with a clear
problem that carries no internal detail, while the process keeps serving.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tenfold.testing import PgCluster, RedisServer
from tests._serving import REPO, tenfold_run

PROBLEM = "application/problem+json"
# Nothing a client sees may carry these: driver text, addresses, stacks.
LEAKS = ("Traceback", "asyncpg", "sqlalchemy", "psycopg", "redis.exceptions", "127.0.0.1",
         "Error 111", "ConnectionError", "DataError", "[parameters:")  # fmt: skip


@dataclass
class Target:
    url: str
    log: Path
    redis: RedisServer

    def client(self, **kw: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10.0, **kw)  # type: ignore[arg-type]


def _clean(answer: httpx.Response, *ports: int) -> None:
    """The answer is problem+json with a request id and nothing internal in it."""
    assert answer.headers["content-type"] == PROBLEM, answer.text
    body = answer.json()
    assert body["request_id"]
    for leak in (*LEAKS, *(str(p) for p in ports)):
        assert leak not in answer.text, (leak, answer.text)


@pytest.fixture(scope="module")
def database(pg_cluster: PgCluster) -> Iterator[str]:
    name = pg_cluster.create_database()
    yield name
    pg_cluster.heal()
    pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
async def target(
    pg_cluster: PgCluster,
    redis_server: RedisServer,
    database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Target]:
    """`tenfold run` of tests/attack/target_app.py on a primary, a replica and Redis."""
    workdir = tmp_path_factory.mktemp("attack")
    replica = pg_cluster.replica
    settings = {
        "TENFOLD_DB__URL": pg_cluster.primary.url(database),
        "TENFOLD_DB__REPLICAS": json.dumps([replica.url(database)] if replica else []),
        "TENFOLD_DB__CURSOR_SECRET": "attack-run-cursor-secret",
        "TENFOLD_REDIS__URL": redis_server.url,
        "TENFOLD_REDIS__SOCKET_TIMEOUT": "0.2",
        "TENFOLD_RATELIMIT__PREFIXES": json.dumps({"/limited": "5/minute"}),
        "TENFOLD_OBSERVABILITY__LOG_FORMAT": "console",
    }
    log = workdir / "server.log"
    app = ("--app-dir", str(REPO), "--app", "tests.attack.target_app:app")
    async with tenfold_run(workdir, *app, log=log, **settings) as served:
        yield Target(served.base, log, redis_server)


async def test_rotating_forwarded_for_does_not_escape_the_limit(target: Target) -> None:
    """No proxy is trusted: a new X-Forwarded-For per request is still the same client."""
    async with target.client() as client:
        answers = [
            await client.post("/limited/ping", headers={"X-Forwarded-For": f"198.51.100.{n}"})
            for n in range(10)
        ]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 5
    _clean(answers[-1])
    assert int(answers[-1].headers["Retry-After"]) >= 1


async def test_bytes_the_database_refuses_are_client_errors(target: Target) -> None:
    """A NUL in text and an int beyond the column are 422 problems, not 500s."""
    async with target.client() as client:
        nul = await client.post("/items", json={"name": "a\u0000b"})
        wide = await client.get("/items/2147483648")
        huge = await client.get(f"/lookup/{2**64 + 1}")
        fine = await client.post("/items", json={"name": "ok"})
    for answer in (nul, wide):
        assert answer.status_code == 422, answer.text
        _clean(answer)
    assert huge.status_code == 200
    assert huge.json() == {"value": 2**64 + 1}
    assert fine.status_code == 201


async def test_a_forged_cursor_is_a_bad_request(target: Target) -> None:
    """A cursor that was not signed with the secret is a 400 problem."""
    async with target.client() as client:
        for n in range(3):
            await client.post("/items", json={"name": f"row {n}"})
        first = (await client.get("/items")).json()
        assert first["next"]
        tampered = first["next"][:-2] + ("AA" if not first["next"].endswith("AA") else "BB")
        answers = [await client.get("/items", params={"cursor": c}) for c in (tampered, "x" * 40)]
    for answer in answers:
        assert answer.status_code == 400, answer.text
        _clean(answer)


async def test_an_announced_50_mb_body_is_refused_before_it_is_read(target: Target) -> None:
    """Content-Length over the limit: 413 at once, with most of the body never sent."""
    port = int(target.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b'Content-Length: 52428800\r\n\r\n{"name": "'
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413"), head


async def test_a_streamed_body_is_cut_off_at_the_limit(target: Target) -> None:
    """A chunked body is counted as it arrives and refused once past the limit."""
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"name": "'
        for _ in range(800):  # 50 MB if it were all read
            sent += 65536
            yield b"x" * 65536

    async with target.client() as client:
        try:
            answer = await client.post("/items", content=chunks())
        except httpx.TransportError:
            answer = None  # the server may close before the client finishes sending
    if answer is not None:
        assert answer.status_code == 413
        _clean(answer)
    assert sent < 50 * 1024 * 1024


async def test_control_characters_reach_the_logs_escaped(target: Target) -> None:
    """ESC and NUL in a request path are written escaped in the console log."""
    async with target.client() as client:
        missing = await client.get("/no-such/%1b%5b2J%00tail")
    assert missing.status_code == 404
    _clean(missing)
    await asyncio.sleep(0)  # the access line is written before the response completes
    written = target.log.read_bytes()
    assert b"tail" in written
    assert b"\x1b[2J" not in written
    assert b"\x00" not in written


async def test_a_redis_outage_is_answered_without_internal_details(target: Target) -> None:
    """Writes under a fail-closed limit get a 503 naming no host or driver; /ready says why."""
    await asyncio.to_thread(target.redis.stop)
    try:
        async with target.client() as client:
            refused = await client.post("/limited/ping", headers={"X-Forwarded-For": "1"})
            ready = await client.get("/ready")
    finally:
        await asyncio.to_thread(target.redis.start)
    assert refused.status_code == 503
    _clean(refused, target.redis.port)
    assert set(ready.json()) <= {"status", "checks"}
    assert set(ready.json()["checks"].values()) <= {"ok", "degraded", "failing"}
    for leak in (*LEAKS, str(target.redis.port)):
        assert leak not in ready.text
