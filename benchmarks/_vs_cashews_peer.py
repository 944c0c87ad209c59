"""The other process of ``bench_cache_vs_cashews``: a second instance of each cache.

    python -m benchmarks._vs_cashews_peer <redis url> <loader seconds>

It starts tenfold's and cashews' caches (``_vs_cashews``), prints
``@@ {"ready": true}``, then answers each JSON command line on stdin with one
line, ``@@ `` and a JSON object (the prefix sets replies apart from log lines):

* ``{"op": "stampede", "library": L, "run": R, "i": I, "calls": N, "lock": bool}``: N
  concurrent calls of the cold ``stampede`` function; ``{"ms": .., "values": ..}``
  (the distinct values the callers got).
* ``{"op": "read", "library": L, "run": R, "n": K, "expect": V, "until_clean": S}``:
  read the ``tags`` function's entries 0..K-1 and count the ones whose version
  is not V (stale); with ``until_clean`` (seconds, or false), repeat until a pass has
  none, for at most that long. ``{"first_pass_stale": .., "passes": .., "stale": .., "ms": ..}``.
* ``{"op": "quit"}``.

``Peer`` is the benchmark's handle on one such process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from benchmarks._vs_cashews import LIBRARIES, counting_loader, side, versioned_loader

__all__ = ["REPLY", "Peer"]

REPO = Path(__file__).resolve().parents[1]
REPLY = "@@ "


class Instance:
    """What runs in the peer process: both caches and the functions it is asked to call."""

    def __init__(self, url: str, loader_seconds: float) -> None:
        self.raw = aioredis.Redis.from_url(url)
        self.sides = {name: side(name, url) for name in LIBRARIES}
        counting = counting_loader(self.raw, loader_seconds)
        versioned = versioned_loader(self.raw)
        self.stampede = {
            (name, lock): self.sides[name].function("stampede", counting, lock=lock)
            for name in ("tenfold", "cashews")
            for lock in (False, True)
        }
        self.tagged = {
            name: s.function("tags", versioned, tag="tags") for name, s in self.sides.items()
        }

    async def start(self) -> None:
        for s in self.sides.values():
            await s.start()

    async def stop(self) -> None:
        for s in self.sides.values():
            await s.stop()
        await self.raw.aclose()

    async def do_stampede(self, command: dict[str, Any]) -> dict[str, Any]:
        call = self.stampede[(command["library"], bool(command["lock"]))]
        started = time.perf_counter()
        values = await asyncio.gather(
            *(call(command["run"], command["i"]) for _ in range(command["calls"]))
        )
        ms = (time.perf_counter() - started) * 1e3
        return {"ms": ms, "values": sorted({v["load"] for v in values})}

    async def do_read(self, command: dict[str, Any]) -> dict[str, Any]:
        call, n, expect = self.tagged[command["library"]], command["n"], command["expect"]
        started = time.perf_counter()
        passes, stale, first = 0, 0, None
        while True:
            passes += 1
            now_stale = 0
            for i in range(n):
                # Each read stands for a request: the event loop (and with it the
                # invalidation listener) runs between two of them, as in a server.
                await asyncio.sleep(0)
                now_stale += (await call(command["run"], i))["v"] != expect
            stale += now_stale
            first = now_stale if first is None else first
            elapsed = time.perf_counter() - started
            if not command["until_clean"] or not now_stale or elapsed > command["until_clean"]:
                break
        return {
            "first_pass_stale": first,
            "passes": passes,
            "stale": stale,
            "still_stale": now_stale,
            "ms": elapsed * 1e3,
        }


class Peer:
    """A ``_vs_cashews_peer`` process: a second instance of both caches."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, url: str, loader_seconds: float) -> Peer:
        """Start a peer and wait until its caches are up."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", __name__, url, str(loader_seconds)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
            env=env,
        )
        peer = cls(process)
        assert (await peer.receive())["ready"]
        return peer

    async def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()

    async def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while line := (await self.process.stdout.readline()).decode():
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY) :])  # type: ignore[no-any-return]
        raise RuntimeError(f"the peer process exited ({await self.process.wait()})")

    async def ask(self, **command: Any) -> dict[str, Any]:
        await self.send(**command)
        return await self.receive()

    async def close(self) -> None:
        if self.process.returncode is None:
            await self.send(op="quit")
            await asyncio.wait_for(self.process.wait(), 30)


async def serve(url: str, loader_seconds: float) -> None:
    peer = Instance(url, loader_seconds)
    await peer.start()
    handlers = {"stampede": peer.do_stampede, "read": peer.do_read}
    try:
        _reply({"ready": True})
        while line := await asyncio.to_thread(sys.stdin.readline):
            command = json.loads(line)
            if command["op"] == "quit":
                break
            _reply(await handlers[command["op"]](command))
    finally:
        await peer.stop()


def _reply(document: dict[str, Any]) -> None:
    sys.stdout.write(REPLY + json.dumps(document) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], float(sys.argv[2])))
