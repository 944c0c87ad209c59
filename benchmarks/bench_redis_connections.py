"""How many Redis connections one worker holds, before and after the process-wide hub.

One uvicorn worker serves ``_apps_connections`` (data cache, HTTP cache, rate
limiter, idempotency store, an upstream with shared breaker state and quota,
all on one Redis), first to one client at a time, then to ``--concurrency``
concurrent clients, each for ``--duration`` seconds; after each phase
``CLIENT LIST`` on that Redis (which nothing else uses) counts the worker's
connections, and those subscribed to a channel.

The same app is served twice in one run: by this checkout's tenfold, and by
the tenfold of ``--before`` (a git revision, exported with ``git archive``), so
the two counts compare like for like.

    python -m benchmarks bench_redis_connections [--quick] [--before REV]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from benchmarks._results import Results, Target, record
from benchmarks._wrk import REPO_ROOT, uvicorn_server
from tenfold.testing import RedisServer

#: The last commit before the hub: every capability opened its own Redis clients.
BEFORE = "3adf488"
TARGETS = {"concurrent.pubsub.after": Target.at_most(1.0)}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--before", default=BEFORE, help="git revision to compare against")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 1.5
    return args


def _export(revision: str, into: Path) -> Path:
    """The ``tenfold`` package of ``revision``, in a directory to put on PYTHONPATH."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", revision, "tenfold"],
        check=True,
        capture_output=True,
    ).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


async def _load(base_url: str, seconds: float, concurrency: int) -> int:
    """Requests over every route, ``concurrency`` at a time; returns how many were answered."""
    done = 0
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        nonlocal done
        headers = {"X-API-Key": f"bench-{n}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as http:
            i = 0
            while time.monotonic() < deadline:
                i += 1
                if i % 3 == 0:
                    key = {"Idempotency-Key": uuid.uuid4().hex}
                    await http.post("/orders", headers=key, json={})
                elif i % 3 == 1:
                    await http.get(f"/profile/u{(n * 7 + i) % 200}")
                else:
                    await http.get("/news")
                done += 1

    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return done


def _count(redis: RedisServer) -> tuple[int, int]:
    """(connections, subscribed connections) on ``redis``, the CLIENT LIST caller excluded."""
    lines = redis.command("CLIENT", "LIST").decode().splitlines()
    entries = [dict(p.split("=", 1) for p in line.split() if "=" in p) for line in lines]
    worker = [e for e in entries if not e.get("cmd", "").startswith("client")]
    subscribed = [e for e in worker if e.get("sub", "0") != "0" or e.get("psub", "0") != "0"]
    return len(worker), len(subscribed)


def _measure(
    label: str, code: Path | None, args: argparse.Namespace, workdir: Path
) -> dict[str, float]:
    (workdir / label).mkdir()
    redis = RedisServer.launch(workdir / label)
    try:
        env = {
            "TENFOLD_REDIS__URL": redis.url,
            "TENFOLD_DB__URL": f"sqlite+aiosqlite:///{workdir}/{label}.db",
            "TENFOLD_APP__GC_FREEZE": "false",
        }
        # ``code`` first on the import path (the server's working directory): its tenfold.
        with uvicorn_server(
            "benchmarks._apps_connections:make_app", env=env, ready_path="/news", cwd=code
        ) as server:
            answered = asyncio.run(_load(server.url, args.duration, 1))
            idle = _count(redis)
            answered += asyncio.run(_load(server.url, args.duration, args.concurrency))
            total, pubsub = _count(redis)
    finally:
        redis.close()
    print(
        f"{label:>7}: one client at a time: {idle[0]:3d} connections, {idle[1]} subscribed; "
        f"{args.concurrency} at a time: {total:3d} connections, {pubsub} subscribed "
        f"({answered} requests)"
    )
    return {
        "sequential.connections": float(idle[0]),
        "sequential.pubsub": float(idle[1]),
        "concurrent.connections": float(total),
        "concurrent.pubsub": float(pubsub),
        "requests": float(answered),
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    print(
        f"one uvicorn worker; 1, then {args.concurrency} concurrent clients for "
        f"{args.duration:g}s each, then CLIENT LIST; before = {args.before}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="tenfold-bench-conn-"))
    try:
        old = _export(args.before, workdir / "before-src")
        before = _measure("before", old, args, workdir)
        after = _measure("after", None, args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    for label, figures in (("before", before), ("after", after)):
        for name, value in figures.items():
            results.figures[f"{name}.{label}"] = value
    for phase in ("sequential", "concurrent"):
        name = f"{phase}.connections"
        results.ratios[f"{name}.after/before"] = after[name] / before[name]
        print(
            f"{phase}: connections {before[name]:g} -> {after[name]:g}, subscribed "
            f"{before[phase + '.pubsub']:g} -> {after[phase + '.pubsub']:g}"
        )
    record(results)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
