"""The load side of ``bench_realtime``: WebSocket subscribers in load-generator processes.

Each load process (``python -m benchmarks._realtime_load CONFIG``) opens its
share of the clients with picows (no compression, no client pings, no proxy;
frames are parsed in C and handed to a callback, with no task or queue per
client), subscribes each through a frame **adapter**, and
records, per client, every frame's receive time; each publication's latency is
its frame's receive time minus the send time the publication carries (both wall
clock on this one machine). The process unpacks each distinct frame once
(``_Frames``): its clients stand in for separate devices that each parse only
their own frames, and would otherwise spend the process's CPU parsing the same
frame hundreds of times, delaying the receipts it measures. The
driver (``LoadGroup``) talks to the processes over
their standard streams:

- the process prints ``ready {"opened": n, "failed": n, "error": "..."}``;
- the driver writes ``stop <expected> <deadline>`` once the publisher is done:
  the process waits until every client has the publications ``0..expected-1``
  or the wall clock passes ``deadline``, writes its results and prints ``done``.

An adapter knows one wire format: how to subscribe on an open connection and
how to unpack a frame into ``(seq, sent_at)`` pairs. ``raw`` is one message per
frame (the broadcaster peer); ``push`` is tenfold's protocol v1 (a ``subscribe``
frame with an ``id``, then ``push`` frames carrying a batch of ``pubs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from array import array
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from picows import WSCloseCode, WSError, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

REPO = Path(__file__).resolve().parents[1]
#: Handshakes in flight at once per load process.
CONNECT_CONCURRENCY = 64


class Adapter(Protocol):
    """One wire format: how a client subscribes, and what a frame carries."""

    async def subscribe(self, ws: _Socket, channel: str) -> None: ...

    def unpack(self, frame: str | bytes) -> Iterable[tuple[int, float]]:
        """The ``(seq, sent_at)`` of each publication in ``frame``."""
        ...


class RawFrames:
    """One publication per text frame; the server's first frame says it subscribed."""

    async def subscribe(self, ws: _Socket, channel: str) -> None:
        hello = orjson.loads(await ws.recv())
        if hello.get("subscribed") != channel:
            raise RuntimeError(f"expected the subscription of {channel!r}, got {hello!r}")

    def unpack(self, frame: str | bytes) -> Iterable[tuple[int, float]]:
        data = orjson.loads(frame)
        return ((data["seq"], data["t"]),)


class PushFrames:
    """tenfold's protocol v1: ``subscribe`` by frame, then ``push`` frames with ``pubs``."""

    async def subscribe(self, ws: _Socket, channel: str) -> None:
        ws.send(orjson.dumps({"id": 1, "subscribe": {"channel": channel}}))
        while True:
            reply = orjson.loads(await ws.recv())
            if reply.get("id") == 1:
                break
        if "error" in reply:
            raise RuntimeError(f"subscribe to {channel!r} refused: {reply['error']}")

    def unpack(self, frame: str | bytes) -> Iterable[tuple[int, float]]:
        # A resync push has no pubs: what it stands for shows up as lost.
        pubs = orjson.loads(frame).get("push", {}).get("pubs", ())
        return ((p["data"]["seq"], p["data"]["t"]) for p in pubs)


ADAPTERS: dict[str, Adapter] = {"raw": RawFrames(), "push": PushFrames()}


# -- in a load process -------------------------------------------------------------------------


class _Frames:
    """Every distinct frame this process received, unpacked once.

    A load process stands in for hundreds of devices that each parse only their own
    frames; its clients receive the same frames, so it unpacks each distinct one once
    and a client records which frame came when. Keyed by the whole frame, so a frame
    that differs for one client is unpacked on its own: nothing is assumed.
    """

    __slots__ = ("adapter", "index", "unpacked")

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.index: dict[str | bytes, int] = {}
        #: Per frame: its publications' sequence numbers, and their send times.
        self.unpacked: list[tuple[tuple[int, ...], tuple[float, ...]]] = []

    def lookup(self, frame: str | bytes) -> int:
        found = self.index.get(frame)
        if found is None:
            pairs = tuple(self.adapter.unpack(frame))
            found = self.index[frame] = len(self.unpacked)
            self.unpacked.append((tuple(s for s, _ in pairs), tuple(t for _, t in pairs)))
        return found


@dataclass(slots=True)
class _Client:
    #: The ``_Frames`` index of each frame received, in receive order.
    frames: array = field(default_factory=lambda: array("q"))
    #: The wall-clock receive time of each entry of ``frames``.
    times: array = field(default_factory=lambda: array("d"))
    #: Publications received, duplicates included.
    received: int = 0
    #: Whether every expected publication is in, once ``received`` reached the count.
    complete: bool = False
    last_receive: float = 0.0
    closed: bool = False


class _Socket(WSListener):
    """One client's connection (picows): frames go to ``inbox`` until it subscribed, then
    straight into its ``_Client`` record, in the transport's callback (no task, no queue)."""

    def __init__(self) -> None:
        self.client = _Client()
        self.transport: WSTransport | None = None
        self.frames: _Frames | None = None
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = time.time()
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if kind not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return  # pings are answered by picows
        payload = frame.get_payload_as_bytes()
        frames = self.frames
        if frames is None:
            self.inbox.put_nowait(payload)
            return
        client = self.client
        index = frames.lookup(payload)
        client.frames.append(index)
        client.times.append(now)
        client.received += len(frames.unpacked[index][0])
        client.last_receive = now

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.client.closed = True

    def send(self, text: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, text)

    async def recv(self) -> bytes:
        return await self.inbox.get()

    async def close(self) -> None:
        if self.transport is not None and not self.client.closed:
            self.transport.send_close(WSCloseCode.OK)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.transport.wait_disconnected(), 10)
            self.transport.disconnect()


async def connect_socket(url: str) -> _Socket:
    """One client connection to ``url`` (not subscribed yet; ``close()`` it)."""
    _, socket = await ws_connect(_Socket, url, websocket_handshake_timeout=60)
    assert isinstance(socket, _Socket)
    return socket


async def _open(config: dict[str, Any], index: int, gate: asyncio.Semaphore) -> _Socket:
    adapter = ADAPTERS[config["adapter"]]
    urls = config["urls"]
    async with gate:
        socket = await connect_socket(urls[(config["first"] + index) % len(urls)])
        await asyncio.wait_for(adapter.subscribe(socket, config["channel"]), 60)
    return socket


async def _load(config: dict[str, Any]) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    # A channel's first subscriber on each server alone, then the rest at once: subscribers
    # arriving together at a server with none yet lose broadcaster's race (each registers
    # itself, then the last overwrites the others: they get nothing).
    first = min(config["prime"], config["clients"])
    outcomes = [await _attempt(_open(config, i, gate)) for i in range(first)]
    opening = [_attempt(_open(config, i, gate)) for i in range(first, config["clients"])]
    outcomes += await asyncio.gather(*opening)
    sockets, errors = [], []
    for outcome in outcomes:
        if isinstance(outcome, (OSError, WSError, TimeoutError, RuntimeError)):
            errors.append(outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            sockets.append(outcome)
    frames = _Frames(ADAPTERS[config["adapter"]])
    for socket in sockets:  # from here on each frame is recorded as it arrives
        socket.frames = frames
    clients = [socket.client for socket in sockets]
    error = f"{type(errors[0]).__name__}: {errors[0]}" if errors else ""
    ready = {"opened": len(clients), "failed": len(errors), "error": error}
    print("ready", json.dumps(ready), flush=True)
    cpu_at_ready = time.process_time()
    command = await asyncio.to_thread(sys.stdin.readline)
    _, expected, deadline = command.split()
    await _until_complete(clients, frames, int(expected), float(deadline))
    open_at_stop = sum(1 for c in clients if not c.closed)
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    cpu = time.process_time() - cpu_at_ready
    _write(Path(config["out"]), clients, frames, open_at_stop, cpu)
    print("done", flush=True)


async def _attempt(opening: Awaitable[_Socket]) -> _Socket | BaseException:
    try:
        return await opening
    except Exception as exc:  # sorted by the caller: connection failures are counted
        return exc


async def _until_complete(
    clients: list[_Client], frames: _Frames, expected: int, deadline: float
) -> None:
    while time.time() < deadline:
        if all(_complete(c, frames, expected) for c in clients):
            return
        await asyncio.sleep(0.05)


def _complete(client: _Client, frames: _Frames, expected: int) -> bool:
    """Whether ``client`` has ``expected`` distinct publications; counted only once it has
    received that many (no set per client grows while frames arrive)."""
    if not client.complete and client.received >= expected:
        client.complete = len(_unique(client, frames)) >= expected
    return client.complete


def _unique(client: _Client, frames: _Frames) -> set[int]:
    seen: set[int] = set()
    for index in client.frames:
        seen.update(frames.unpacked[index][0])
    return seen


def _write(
    out: Path, clients: list[_Client], frames: _Frames, open_at_stop: int, cpu: float
) -> None:
    first_latencies = array("d")
    unique = []
    for client in clients:
        seen: set[int] = set()
        for index, now in zip(client.frames, client.times, strict=True):
            seqs, sent = frames.unpacked[index]
            for seq, sent_at in zip(seqs, sent, strict=True):
                if seq not in seen:
                    seen.add(seq)
                    first_latencies.append((now - sent_at) * 1000)
        unique.append(len(seen))
    summary = {
        "received": [c.received for c in clients],
        "unique": unique,
        "last_receive": max((c.last_receive for c in clients), default=0.0),
        "open_at_stop": open_at_stop,
        "cpu_s": cpu,
    }
    out.write_bytes(orjson.dumps(summary))
    with out.with_suffix(".ms").open("wb") as file:
        first_latencies.tofile(file)


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
class Delivery:
    """What every client of a run received, merged over the load processes."""

    clients: int
    expected_each: int
    received: int
    unique: int
    #: Per-client expected minus unique, summed: not received by the deadline.
    lost: int
    duplicated: int
    #: Subscribers that received nothing at all.
    silent: int
    latencies_ms: list[float]
    last_receive: float
    open_at_stop: int
    #: CPU time the load processes used from their clients being ready to their end.
    load_cpu_s: float

    def percentile(self, q: int) -> float:
        if len(self.latencies_ms) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]


@dataclass(slots=True)
class LoadGroup:
    """``clients`` subscribers over ``processes`` load processes, started and stopped together."""

    adapter: str
    urls: list[str]
    channel: str
    clients: int
    processes: int
    workdir: Path
    tag: str
    opened: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    _procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start(self) -> None:
        """Start the processes; return once every client has connected and subscribed (or
        failed to: ``failed`` and ``errors`` say so)."""
        shares = [self.clients // self.processes] * self.processes
        for i in range(self.clients % self.processes):
            shares[i] += 1
        first = 0
        for n, share in enumerate(shares):
            config = {
                "adapter": self.adapter,
                "urls": self.urls,
                "channel": self.channel,
                "clients": share,
                "first": first,
                # Only the first process opens the first subscriber of each server alone.
                "prime": len(self.urls) if n == 0 else 0,
                "out": str(self.workdir / f"{self.tag}-{n}.json"),
            }
            first += share
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks._realtime_load",
                json.dumps(config),
                cwd=REPO,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            self._procs.append(proc)
            if n == 0:  # the others start once its first subscribers are in
                await self._ready(proc)
        for proc in self._procs[1:]:
            await self._ready(proc)

    async def _ready(self, proc: asyncio.subprocess.Process) -> None:
        ready = json.loads(await asyncio.wait_for(_line(proc, "ready"), 600))
        self.opened += ready["opened"]
        self.failed += ready["failed"]
        if ready["error"]:
            self.errors.append(ready["error"])

    async def stop(self, expected: int, deadline: float) -> Delivery:
        """Wait for ``expected`` publications per client (until the wall clock reaches
        ``deadline``), close every client and merge what they received."""
        for proc in self._procs:
            assert proc.stdin is not None
            proc.stdin.write(f"stop {expected} {deadline}\n".encode())
            await proc.stdin.drain()
        wait = max(deadline - time.time(), 0) + 120
        for proc in self._procs:
            await asyncio.wait_for(_line(proc, "done"), wait)
            if await asyncio.wait_for(proc.wait(), 60) != 0:
                raise RuntimeError("a load process failed")
        return self._merge(expected)

    async def kill(self) -> None:
        for proc in self._procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    def _merge(self, expected: int) -> Delivery:
        received, unique, lost, latencies = 0, 0, 0, array("d")
        last, still_open, silent, cpu = 0.0, 0, 0, 0.0
        for n in range(len(self._procs)):
            out = self.workdir / f"{self.tag}-{n}.json"
            summary = orjson.loads(out.read_bytes())
            received += sum(summary["received"])
            unique += sum(summary["unique"])
            lost += sum(expected - u for u in summary["unique"])
            silent += sum(1 for u in summary["unique"] if u == 0)
            last = max(last, summary["last_receive"])
            still_open += summary["open_at_stop"]
            cpu += summary["cpu_s"]
            raw = out.with_suffix(".ms").read_bytes()
            latencies.frombytes(raw)
        return Delivery(
            clients=self.opened,
            expected_each=expected,
            received=received,
            unique=unique,
            lost=lost,
            duplicated=received - unique,
            silent=silent if expected else 0,
            latencies_ms=latencies.tolist(),
            last_receive=last,
            open_at_stop=still_open,
            load_cpu_s=cpu,
        )


async def _line(proc: asyncio.subprocess.Process, word: str) -> str:
    """The rest of the first stdout line starting with ``word``."""
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        head, _, rest = line.decode().strip().partition(" ")
        if head == word:
            return rest
    raise RuntimeError(f"a load process exited before saying {word!r}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv[1:])
