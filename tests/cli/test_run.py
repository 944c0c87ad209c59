"""`tenfold run` serves an app from the working directory, as `make run` does."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import anyio
import httpx

from tests._serving import tenfold_run


async def test_run_serves_the_example_app_on_tenfold_port(tmp_path: Path) -> None:
    """The console script imports apps.hello from the working directory, on TENFOLD_PORT."""
    async with tenfold_run(tmp_path) as served, httpx.AsyncClient(base_url=served.base) as client:
        assert (await client.get("/ready")).json()["status"] == "ok"
        key = {"Idempotency-Key": "first", "X-API-Key": "test"}
        created = await client.post("/notes", json={"body": "hello"}, headers=key)
        assert created.status_code == 201
        note = (await client.get(f"/notes/{created.json()['id']}")).json()
        assert note["body"] == "hello"
        missing = await client.get("/notes/999999")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert "tenfold_http_requests_total" in (await client.get("/metrics")).text
    assert served.base in served.stderr


async def _rotating_forwarded_for(base: str, count: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base) as client:
        return [
            (
                await client.get("/notes/1", headers={"X-Forwarded-For": f"198.51.100.{n}"})
            ).status_code
            for n in range(count)
        ]


async def test_forwarded_for_from_loopback_is_not_believed_by_default(tmp_path: Path) -> None:
    """With no trusted proxies, rotating X-Forwarded-For from loopback is one client to limit."""
    async with tenfold_run(tmp_path, TENFOLD_RATELIMIT__DEFAULT="5/minute") as served:
        statuses = await _rotating_forwarded_for(served.base, 10)
    assert statuses == [404] * 5 + [429] * 5


async def test_forwarded_for_from_a_trusted_proxy_is_the_client(tmp_path: Path) -> None:
    """With 127.0.0.1 trusted, each X-Forwarded-For client is limited on its own."""
    async with tenfold_run(
        tmp_path, TENFOLD_RATELIMIT__DEFAULT="5/minute", TENFOLD_HTTP__TRUSTED_PROXIES="127.0.0.1"
    ) as served:
        statuses = await _rotating_forwarded_for(served.base, 10)
    assert statuses == [404] * 10


async def _hits_until_both_workers_answered(base: str) -> int:
    """Send /hit requests over fresh connections until both workers served some; how many."""
    pids: set[int] = set()
    sent = 0
    fresh = httpx.Limits(max_keepalive_connections=0)
    for _ in range(50):
        async with httpx.AsyncClient(base_url=base, limits=fresh) as client:
            answers = await asyncio.gather(*(client.get("/hit") for _ in range(8)))
        sent += len(answers)
        pids |= {answer.json()["pid"] for answer in answers}
        if len(pids) == 2:
            return sent
    raise AssertionError("one worker accepted every connection")


_HITS = re.compile(r'^tenfold_http_requests_total\{[^}]*route="/hit"[^}]*\} (\S+)$', re.M)


async def _scrape(base: str) -> tuple[int, float]:
    """(The worker that answered, the /hit count its /metrics reports): one connection, so
    both requests reach the same worker."""
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=1)) as client:
        pid = (await client.get("/pid")).json()["pid"]
        text = (await client.get("/metrics")).text
    return pid, sum(float(value) for value in _HITS.findall(text))


async def test_workers_metrics_are_summed(tmp_path: Path) -> None:
    """With --workers 2 every scrape reports the requests of both workers, whichever answers."""
    app = ("--app-dir", "tests/cli", "--app", "served_app:app", "--workers", "2")
    async with tenfold_run(tmp_path, *app) as served:
        sent = await _hits_until_both_workers_answered(served.base)
        reports: dict[int, list[float]] = {}
        for _ in range(200):
            pid, hits = await _scrape(served.base)
            reports.setdefault(pid, []).append(hits)
            # A worker records a request just after answering it: wait for the last ones.
            if len(reports) == 2 and all(counts[-1] == sent for counts in reports.values()):
                break
    assert len(reports) == 2, "one worker answered every scrape"
    assert {pid: counts[-1] for pid, counts in reports.items()} == dict.fromkeys(reports, sent)
    assert max(max(counts) for counts in reports.values()) == sent
    directory = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", served.stderr)
    assert directory is not None, served.stderr
    assert not await anyio.Path(directory.group(1)).exists()


async def test_keep_alive_timeout_flag_closes_idle_connections(tmp_path: Path) -> None:
    """With --keep-alive-timeout 1 the server itself closes a connection left idle."""
    async with tenfold_run(tmp_path, "--keep-alive-timeout", "1") as served:
        host, port = served.base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: app\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            assert head.startswith(b"HTTP/1.1 200")
            length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            # Nothing more is sent: the next thing on the connection is the server's close.
            assert await asyncio.wait_for(reader.read(), 30) == b""
        finally:
            writer.close()
