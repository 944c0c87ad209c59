"""The viewers of ``bench_tourney``: WebSocket clients subscribed to tournament channels.

Each viewer process (``python -m benchmarks._tourney_viewers CONFIG``) opens its
share of the clients with picows (``benchmarks._realtime_load.connect_socket``),
client ``i`` subscribing to ``channels[(first + i) % len(channels)]`` with
tenfold's protocol v1, and records when each push frame arrived. A push of the
app carries the match as it now is (``{"type": "match", "match": {"id", "version",
...}, "leaderboard": ...}``), so the benchmark, which timed each score write by
``(match id, version)``, matches receipts to writes without anything added to the
messages. Frames are parsed once per process (the clients of a channel receive the
same bytes).

Protocol with the driver (``ViewerGroup``), over the standard streams:

- the process prints ``ready {"opened": n, "failed": n, "error": "..."}``;
- the driver writes ``stop``; the process closes its clients, writes per client the
  first receipt time of each ``(match, version)`` and prints ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks._realtime_load import CONNECT_CONCURRENCY, PushFrames, connect_socket

REPO = Path(__file__).resolve().parents[1]
#: ``(match_id, version)`` packed in one integer.
VERSION_BITS = 24


def key_of(match_id: int, version: int) -> int:
    return (match_id << VERSION_BITS) | version


class _Keys:
    """The ``(match, version)`` keys of each distinct frame, parsed once."""

    def __init__(self) -> None:
        self.index: dict[bytes, tuple[int, ...]] = {}

    def of(self, frame: bytes) -> tuple[int, ...]:
        found = self.index.get(frame)
        if found is None:
            keys = []
            for pub in orjson.loads(frame).get("push", {}).get("pubs", ()):
                match = pub.get("data", {}).get("match")
                if match:
                    keys.append(key_of(match["id"], match["version"]))
            found = self.index[frame] = tuple(keys)
        return found


async def _load(config: dict[str, Any]) -> None:
    adapter = PushFrames()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    channels, url = config["channels"], config["url"]

    async def open_one(i: int) -> Any:
        async with gate:
            socket = await connect_socket(url)
            channel = channels[(config["first"] + i) % len(channels)]
            await asyncio.wait_for(adapter.subscribe(socket, channel), 120)
            return socket

    outcomes = await asyncio.gather(
        *(open_one(i) for i in range(config["clients"])), return_exceptions=True
    )
    sockets = [o for o in outcomes if not isinstance(o, BaseException)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    keys = _Keys()
    records: list[tuple[array, array]] = []
    for socket in sockets:
        frames, times = array("q"), array("d")
        records.append((frames, times))
        socket.recorder = (frames, times)  # read by the listener below
        _record(socket, keys)
    error = f"{type(errors[0]).__name__}: {errors[0]}" if errors else ""
    print("ready", json.dumps({"opened": len(sockets), "failed": len(errors), "error": error}))
    sys.stdout.flush()
    await asyncio.to_thread(sys.stdin.readline)
    open_at_stop = sum(1 for s in sockets if not s.client.closed)
    received = sum(1 for s in sockets if s.client.received)
    out: dict[str, Any] = {"open_at_stop": open_at_stop, "clients_with_pushes": received}
    first_seen = array("q")
    first_time = array("d")
    for frames, times in records:
        seen: set[int] = set()
        for frame_keys, now in zip(frames, times, strict=True):
            for k in _by_id[frame_keys]:
                if k not in seen:
                    seen.add(k)
                    first_seen.append(k)
                    first_time.append(now)
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
    _write(Path(config["out"]), out, first_seen, first_time)
    print("done", flush=True)


def _write(path: Path, summary: dict[str, Any], keys: array, times: array) -> None:
    """The results, once the clients are closed (nothing else runs in the process then)."""
    path.write_bytes(orjson.dumps(summary))
    with path.with_suffix(".keys").open("wb") as file:
        keys.tofile(file)
    with path.with_suffix(".times").open("wb") as file:
        times.tofile(file)


#: Distinct key tuples by a small id, so a client's record is an integer per frame.
_ids: dict[tuple[int, ...], int] = {}
_by_id: list[tuple[int, ...]] = []


def _record(socket: Any, keys: _Keys) -> None:
    """Route ``socket``'s frames from now on into its recorder (in picows's callback)."""
    frames, times = socket.recorder
    client = socket.client

    def on_frame(payload: bytes, now: float) -> None:
        found = keys.of(payload)
        ident = _ids.get(found)
        if ident is None:
            ident = _ids[found] = len(_by_id)
            _by_id.append(found)
        frames.append(ident)
        times.append(now)
        client.received += 1

    socket.frames = _Sink(on_frame)


class _Sink:
    """Stands in for ``_Frames``: ``_Socket.on_ws_frame`` calls ``lookup`` per frame."""

    def __init__(self, on_frame: Any) -> None:
        self.on_frame = on_frame
        self.unpacked = _Zero()

    def lookup(self, payload: bytes) -> int:
        self.on_frame(payload, time.time())
        return 0


class _Zero:
    def __getitem__(self, index: int) -> tuple[tuple[()], tuple[()]]:
        return ((), ())


def main(argv: list[str]) -> None:
    config = json.loads(argv[0])
    try:
        import uvloop
    except ImportError:
        asyncio.run(_load(config))
    else:
        uvloop.run(_load(config))


# -- in the driver -----------------------------------------------------------------------------


@dataclass(slots=True)
class Receipts:
    """Merged over the processes: each client's first receipt of each ``(match, version)``."""

    keys: array
    times: array
    open_at_stop: int
    clients_with_pushes: int


@dataclass(slots=True)
class ViewerGroup:
    """``clients`` viewers over ``processes`` processes, spread over ``channels``."""

    url: str
    channels: list[str]
    clients: int
    processes: int
    workdir: Path
    tag: str
    opened: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    _procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start(self) -> None:
        shares = [self.clients // self.processes] * self.processes
        for i in range(self.clients % self.processes):
            shares[i] += 1
        first = 0
        for n, share in enumerate(shares):
            config = {
                "url": self.url,
                "channels": self.channels,
                "clients": share,
                "first": first,
                "out": str(self.workdir / f"{self.tag}-{n}.json"),
            }
            first += share
            self._procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "benchmarks._tourney_viewers",
                    json.dumps(config),
                    cwd=REPO,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for proc in self._procs:
            ready = json.loads(await asyncio.wait_for(_line(proc, "ready"), 900))
            self.opened += ready["opened"]
            self.failed += ready["failed"]
            if ready["error"]:
                self.errors.append(ready["error"])

    async def stop(self) -> Receipts:
        for proc in self._procs:
            assert proc.stdin is not None
            proc.stdin.write(b"stop\n")
            await proc.stdin.drain()
        keys, times, still_open, with_pushes = array("q"), array("d"), 0, 0
        for n, proc in enumerate(self._procs):
            await asyncio.wait_for(_line(proc, "done"), 300)
            await asyncio.wait_for(proc.wait(), 60)
            out = self.workdir / f"{self.tag}-{n}.json"
            summary = orjson.loads(out.read_bytes())
            still_open += summary["open_at_stop"]
            with_pushes += summary["clients_with_pushes"]
            keys.frombytes(out.with_suffix(".keys").read_bytes())
            times.frombytes(out.with_suffix(".times").read_bytes())
        return Receipts(keys, times, still_open, with_pushes)

    async def kill(self) -> None:
        for proc in self._procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _line(proc: asyncio.subprocess.Process, word: str) -> str:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        head, _, rest = line.decode().strip().partition(" ")
        if head == word:
            return rest
    raise RuntimeError(f"a viewer process exited before saying {word!r}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv[1:])
