"""Tourney (``apps/tourney``) in its production profile under a mixed load, with live viewers.

What runs: ``scripts/run_prod.py``'s ``Launcher``, started from here in a temporary
directory on free loopback ports: PostgreSQL primary and streaming replica, Redis,
one Celery worker, two API processes (``tenfold run``) and nginx in front. Every
request and every WebSocket goes through nginx. The app is
``apps.tourney.main:make_app`` with its demo seeded (``TENFOLD_TOURNEY__DEMO=true``)
but its simulator slowed to a move a minute (``DEMO_INTERVAL=60``), so the writes
measured are the benchmark's. Three settings differ from the plan's, each for the
load and not for speed:

- ``TENFOLD_TOURNEY__API_LIMIT=1000000/minute``: the plan's 100/minute per user (per
  address for anonymous readers) would make a load of a few dozen wrk connections, all
  one user or one address behind nginx, mostly 429s: it would measure the limiter;
- ``TENFOLD_REALTIME__MAX_CONNECTIONS_PER_IP=0``: every viewer comes from 127.0.0.1;
- ``TENFOLD_REALTIME__IDLE_TIMEOUT=3600``: the viewers do not ping (a browser's client
  pings every 25 s, within the 60 s default).

Setup, as the demo's ``host`` (``/auth/token``): ``--tournaments`` (20) tournaments, each
with ``--teams`` (8) teams, one game, the 28 matches of a round robin, 3 of them started
(live).

1. **mixed** (``--seconds``, 60): three load sources at once, each timing its own class
   so that each class's latency is its own (a single wrk run reports one histogram for
   all its requests):

   - leaderboard reads: wrk (``--leaderboard-connections`` 16) cycling over
     ``GET /api/tournaments/{id}/leaderboard`` of the tournaments;
   - match and list reads: wrk (``--read-connections`` 3) alternating
     ``GET /api/matches/{id}`` and ``GET /api/tournaments/{id}/matches``;
   - writes, with the host's bearer token, from this process at ``--write-rate``/s (50:
     5 % of the 1,000 req/s target), turning over the live matches, one write in
     flight per match: a score update (``POST /api/matches/{id}/score`` with the
     match's version); after ``--complete-after`` (20) of them the match is completed
     (``/complete``: the standings, so the leaderboard, change), and the next write
     starts the tournament's next scheduled match (``/start``). A 409 (stale version)
     is counted apart and the version re-read, never an error.

   The connection counts set the mix of a closed loop: the shares reached are printed
   and recorded. Each wrk run's Lua ``done()`` prints its latency percentiles (every
   0.5 %); the overall percentiles are those of the mixture of the three classes,
   weighted by their request counts. Errors: socket errors, timeouts and responses
   other than 2xx (304 and the writes' 409 excepted). The cache hit ratio is read from
   each API process's ``/metrics`` (``tenfold_cache_requests_total``, namespace
   ``leaderboard``; nginx would hand a scrape to either process, so each process is
   scraped on its own port) before and after: hits (L1 or L2, stale included) over
   lookups.
2. **realtime**, in the same run: ``--viewers`` (1,000) WebSocket clients through
   nginx, spread over the channels ``tournament:<id>``
   (``benchmarks/_tourney_viewers.py``, picows). Each write's send time is kept by
   ``(match id, version)`` (the version its response carries); a push carries the
   match with its version, so each viewer's first receipt of it gives a latency.
   Lost: receipts expected (writes x viewers of their tournament) not received.
3. **connections**: ``--connections`` (10,000) idle viewers through nginx, held by the
   two API processes for ``--idle`` s while writes at ``--idle-write-rate``/s keep
   pushes flowing; held (open at the end), viewers that received pushes, the API
   processes' RSS.

During the mixed load, ``py-spy record`` samples one API process for a few seconds
(when py-spy is installed; ``--no-profile`` skips it); the top frames by own time and by
total time are printed and kept in the results' settings.

Everything, the load side included, shares the machine's cores: on a 2-core machine
the figures are those of 2 PostgreSQL servers, Redis, a worker, 2 API processes, nginx,
2 wrk processes and the viewers on 2 cores, and the CPU seconds each part used during
the mixed load are recorded to show where the time went.

Targets (reported, never enforced): 1,000 req/s, p95 < 50 ms overall, leaderboard p95
< 20 ms, 0 errors, hit ratio >= 95 %, push p99 < 150 ms (100 ms batching), 10,000
connections held.

Measured (2 cores, everything on them, load average 2.6 before the run; docs/benchmarks.md
has the tables and the per-request costs): 1,120 req/s, 0 errors, leaderboard hit ratio
99.8 %, 10,000 connections held; p95 225 ms overall and 101 ms for the leaderboard, push
p99 5.2 s from the write's send (77 ms from its response; 86.5 ms to 10,000 viewers at 10
writes/s without the read load). The limit is the 2 cores: the server processes used 84
of the 120 CPU seconds and the load generators the rest, so every request queues for a
core, and a write's twenty round trips queue twenty times (the app's own log: writes 274
ms p50, 661 ms p95 in a 30 s run; most of it waiting for the match-state projection).

    python -m benchmarks bench_tourney [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a file, not with -m: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from benchmarks._results import Results, Target, record
from benchmarks._tourney_viewers import ViewerGroup, key_of
from benchmarks._wrk import find_wrk, free_port
from benchmarks.bench_realtime import raise_open_files_limit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from run_prod import Config, Launcher  # noqa: E402

APP = "apps.tourney.main:make_app"
PASSWORD = "beer-olympics"  # the demo's (apps/tourney/demo.py)
TOURNAMENTS = 4 * 5
LIVE_PER_TOURNAMENT = 3
#: Viewers each viewer process opens at most.
VIEWERS_PER_PROCESS = 5000
TARGETS = {
    "mixed.req_per_s": Target.at_least(1000),
    "mixed.p95_ms": Target.at_most(50),
    "mixed.leaderboard_p95_ms": Target.at_most(20),
    "mixed.errors": Target.at_most(0),
    "mixed.leaderboard_hit_ratio": Target.at_least(0.95),
    "realtime.push_p99_ms": Target.at_most(150),
    "connections.held": Target.at_least(10_000),
}
#: The environment the app runs with (see the module docstring).
APP_ENV = {
    "TENFOLD_TOURNEY__DEMO": "true",
    "TENFOLD_TOURNEY__DEMO_INTERVAL": "60",
    "TENFOLD_TOURNEY__API_LIMIT": "1000000/minute",
    "TENFOLD_REALTIME__MAX_CONNECTIONS_PER_IP": "0",
    "TENFOLD_REALTIME__IDLE_TIMEOUT": "3600",
}

_LUA = """
local paths = {PATHS}
local counter = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; not_modified = 0 end
function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end
function response(status, headers, body)
  if status == 304 then not_modified = not_modified + 1
  elseif status < 200 or status > 299 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local bad_total, nm = 0, 0
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad"); nm = nm + t:get("not_modified")
  end
  local e = summary.errors
  local p = {}
  for i = 1, 200 do p[i] = string.format("%.1f", latency:percentile(i / 2)) end
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "socket_errors": %d, "bad": %d, ' ..
    '"not_modified": %d, "percentiles_us": [%s]}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    bad_total, nm, table.concat(p, ",")))
end
"""


@dataclass
class Stack:
    launcher: Launcher
    url: str
    api_urls: list[str]

    def pids(self) -> dict[str, list[int]]:
        return {part.name: part.process.tree() for part in self.launcher.parts}


@dataclass
class Plan:
    token: str
    tournaments: list[int]
    matches: list[int]
    live: dict[int, int]  # match id -> tournament id, every match started so far
    versions: dict[int, int]
    #: The home score each live match was last given: every write changes it (a report of
    #: the score a match already has appends nothing, so it would push nothing).
    scores: dict[int, int]
    #: Each tournament's matches not started yet, in schedule order.
    waiting: dict[int, list[int]]
    #: The live match each slot plays: LIVE_PER_TOURNAMENT slots per tournament.
    slots: list[int]
    #: Score updates a live match has had.
    updates: dict[int, int]


# -- the stack --------------------------------------------------------------------------------


def start_stack(workdir: Path) -> Stack:
    ports = [free_port() for _ in range(6)]
    config = Config(
        app=APP,
        dir=workdir / "prod",
        port=ports[0],
        api_ports=ports[1:3],
        pg_port=ports[3],
        replica_port=ports[4],
        redis_port=ports[5],
        worker_concurrency=1,
    )
    config.dir.mkdir(parents=True)
    os.environ.update(APP_ENV)
    launcher = Launcher(config, say=lambda line: print(line, flush=True))
    try:
        launcher.start()
    except BaseException:
        launcher.stop()
        raise
    base = "http://127.0.0.1:{}"
    return Stack(launcher, base.format(config.port), [base.format(p) for p in config.api_ports])


async def prepare(
    client: httpx.AsyncClient, count: int = TOURNAMENTS, teams_per_tournament: int = 8
) -> Plan:
    """``count`` (20) tournaments as the demo's host: teams, a game, a round robin, 3 matches
    live."""
    token = (
        await _ok(client.post("/auth/token", json={"username": "host", "password": PASSWORD}))
    )["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    tournaments, all_matches, live, versions = [], [], {}, {}
    waiting: dict[int, list[int]] = {}
    for n in range(count):
        tid = (
            await _ok(client.post("/api/tournaments", json={"name": f"Load {n}"}, headers=auth))
        )["id"]
        tournaments.append(tid)
        teams = [
            (
                await _ok(
                    client.post(
                        f"/api/tournaments/{tid}/teams", json={"name": f"T{i}"}, headers=auth
                    )
                )
            )["id"]
            for i in range(teams_per_tournament)
        ]
        game = (
            await _ok(
                client.post(f"/api/tournaments/{tid}/games", json={"name": "Pong"}, headers=auth)
            )
        )["id"]
        pairs = [(a, b) for i, a in enumerate(teams) for b in teams[i + 1 :]]
        waiting[tid] = []
        for slot, (home, away) in enumerate(pairs):
            body = {"game_id": game, "home_team_id": home, "away_team_id": away}
            body["scheduled_at"] = time.time() + slot * 600
            match = await _ok(
                client.post(f"/api/tournaments/{tid}/matches", json=body, headers=auth)
            )
            all_matches.append(match["id"])
            if slot < LIVE_PER_TOURNAMENT:
                started = await _ok(client.post(f"/api/matches/{match['id']}/start", headers=auth))
                live[match["id"]] = tid
                versions[match["id"]] = started["version"]
            else:
                waiting[tid].append(match["id"])
    slots = list(live)
    return Plan(
        token,
        tournaments,
        all_matches,
        live,
        versions,
        dict.fromkeys(live, 0),
        waiting,
        slots,
        dict.fromkeys(live, 0),
    )


async def _ok(pending: Any) -> Any:
    response = await pending
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text[:300]}"
        )
    return response.json() if response.content else None


# -- writes -----------------------------------------------------------------------------------


@dataclass
class Writes:
    sent: dict[int, float]  # key_of(match, version) -> wall-clock send time
    answered: dict[int, float]  # key_of(match, version) -> wall-clock response time
    tournament_of_key: dict[int, int]
    latencies_ms: list[float]
    conflicts: int = 0
    errors: int = 0
    first_error: str = ""
    completions: int = 0
    starts: int = 0
    #: The 409s by the write's kind and the problem's title (at most a few kinds).
    conflict_kinds: collections.Counter[str] = field(default_factory=collections.Counter)


async def write_scores(
    client: httpx.AsyncClient, plan: Plan, rate: float, seconds: float, complete_after: int
) -> Writes:
    """Writes at ``rate``/s for ``seconds``, each due at its own time, over the live slots in
    turn, one in flight per slot (a write whose slot is still busy waits for it).

    A slot's write is a score update; after ``complete_after`` of them the match is
    completed (the leaderboard changes) and the slot's next write starts the tournament's
    next scheduled match. Each is one timed write, and each pushes the match."""
    writes = Writes({}, {}, {}, [])
    auth = {"Authorization": f"Bearer {plan.token}"}
    locks = [asyncio.Lock() for _ in plan.slots]
    tasks = []

    async def one(slot: int) -> None:
        async with locks[slot]:
            match_id = plan.slots[slot]
            tid = plan.live[match_id]
            body: dict[str, int] | None = None
            if plan.updates[match_id] < complete_after:
                plan.scores[match_id] += 1
                plan.updates[match_id] += 1
                path = f"/api/matches/{match_id}/score"
                body = {"home": plan.scores[match_id] % 999, "away": 0}
                body["version"] = plan.versions[match_id]
            elif not _completed(plan, match_id):
                path = f"/api/matches/{match_id}/complete"
            elif plan.waiting[tid]:
                match_id = plan.waiting[tid].pop(0)
                plan.slots[slot] = match_id
                plan.live[match_id], plan.scores[match_id], plan.updates[match_id] = tid, 0, 0
                path = f"/api/matches/{match_id}/start"
            else:  # the tournament is over: this slot's writes go to a match still live
                plan.updates[match_id] = 0
                return
            sent, start = time.time(), time.perf_counter()
            try:
                response = await client.post(path, json=body, headers=auth)
            except httpx.HTTPError as exc:
                writes.errors += 1
                writes.first_error = writes.first_error or repr(exc)
                return
            writes.latencies_ms.append((time.perf_counter() - start) * 1000)
            if response.status_code == 200:
                state = response.json()
                version = state["version"]
                plan.versions[match_id] = version
                key = key_of(match_id, version)
                writes.sent[key] = sent
                writes.answered[key] = time.time()
                writes.tournament_of_key[key] = tid
                if state["status"] == "completed":
                    writes.completions += 1
                    plan.versions[match_id] = -1  # done: the slot starts the next match
                elif path.endswith("/start"):
                    writes.starts += 1
            elif response.status_code == 409:
                writes.conflicts += 1
                problem = response.json()
                kind = path.rsplit("/", 1)[-1]
                writes.conflict_kinds[f"{kind}: {problem.get('detail', '')[:60]}"] += 1
                current = await client.get(f"/api/matches/{match_id}")
                plan.versions[match_id] = current.json()["version"]
            else:
                writes.errors += 1
                writes.first_error = (
                    writes.first_error or f"{response.status_code} {response.text[:200]}"
                )

    count, begin = int(rate * seconds), time.perf_counter()
    for n in range(count):
        wait = begin + n / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(n % len(plan.slots))))
    await asyncio.gather(*tasks)
    return writes


def _completed(plan: Plan, match_id: int) -> bool:
    return plan.versions[match_id] < 0


# -- wrk --------------------------------------------------------------------------------------


@dataclass
class WrkRun:
    requests: int
    seconds: float
    socket_errors: int
    bad: int
    not_modified: int
    percentiles_ms: list[float]  # at 0.5 %, 1 %, ..., 100 %

    def percentile(self, q: float) -> float:
        return self.percentiles_ms[max(0, round(q * 2) - 1)] if self.requests else math.nan


async def run_wrk_lua(
    url: str, paths: list[str], connections: int, seconds: float, workdir: Path, tag: str
) -> WrkRun:
    script = workdir / f"{tag}.lua"
    script.write_text(_LUA.replace("{PATHS}", "{" + ",".join(json.dumps(p) for p in paths) + "}"))
    proc = await asyncio.create_subprocess_exec(
        find_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
        "-s", str(script), url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text = out.decode()
    found = re.search(r"^RESULT (.*)$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk ({tag}) printed no result:\n{text}")
    data = json.loads(found.group(1))
    return WrkRun(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        socket_errors=data["socket_errors"],
        bad=data["bad"],
        not_modified=data["not_modified"],
        percentiles_ms=[float(p) / 1000 for p in data["percentiles_us"]],
    )


def mixture_percentile(classes: list[tuple[int, list[float]]], q: float) -> float:
    """The ``q`` percentile of the mixture of classes, each ``(requests, sorted sample or
    percentile table)`` weighted by its requests."""
    total = sum(n for n, _ in classes)
    if not total:
        return math.nan
    candidates = sorted({v for _, values in classes for v in values})

    def cdf(x: float) -> float:
        return sum(n * bisect.bisect_right(vs, x) / len(vs) for n, vs in classes if vs) / total

    lo, hi = 0, len(candidates) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cdf(candidates[mid]) >= q / 100:
            hi = mid
        else:
            lo = mid + 1
    return candidates[lo]


def _pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return math.nan
    return statistics.quantiles(values, n=200, method="inclusive")[round(q * 2) - 1]


# -- metrics, CPU, profile --------------------------------------------------------------------

_CACHE_LINE = re.compile(
    r"^(\w*cache_requests_total)\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.eE+-]+)$", re.MULTILINE
)


async def cache_counts(client: httpx.AsyncClient, api_urls: list[str]) -> collections.Counter[str]:
    """``namespace/level/result`` -> lookups, summed over the API processes."""
    counts: collections.Counter[str] = collections.Counter()
    for url in api_urls:
        text = (await client.get(url + "/metrics")).text
        for found in _CACHE_LINE.finditer(text):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group("labels")))
            name = f"{labels.get('namespace')}/{labels.get('level')}/{labels.get('result')}"
            counts[name] += float(found.group("value"))
    return counts


def hit_ratio(before: collections.Counter[str], after: collections.Counter[str], ns: str) -> float:
    delta = {k: after[k] - before.get(k, 0) for k in after if k.startswith(ns + "/")}
    hits = sum(v for k, v in delta.items() if k.endswith("/hit") or k.endswith("/stale"))
    misses = delta.get(f"{ns}/l2/miss", 0.0)
    return hits / (hits + misses) if hits + misses else math.nan


def cpu_by_part(stack: Stack) -> dict[str, float]:
    """CPU seconds each part has used: its processes now, and the children they reaped
    (PostgreSQL's backends that came and went)."""
    return {name: sum(_cpu(pid, n == 0) for n, pid in enumerate(tree))
            for name, tree in stack.pids().items()}  # fmt: skip


def _cpu(pid: int, with_children: bool) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone since the tree was read
    # utime, stime, cutime, cstime are fields 14 to 17 of stat(5); index 0 here is field 3.
    ticks = sum(int(fields[i]) for i in ((11, 12, 13, 14) if with_children else (11, 12)))
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mib(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += float(line.split()[1]) / 1024
        except OSError:
            pass
    return total


async def profile(pid: int, seconds: float, workdir: Path) -> list[str]:
    """``py-spy record`` of ``pid`` (and its children): top frames by own and total time."""
    spy = _py_spy()
    if spy is None:
        return ["(py-spy not installed: no profile)"]
    out = workdir / "profile.txt"
    proc = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--subprocesses",
        "--duration", str(max(1, round(seconds))), "--rate", "200", "--format", "raw",
        "--output", str(out), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0 or not out.exists():
        return [f"(py-spy failed: {err.decode()[-200:]})"]
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "_serve.py" not in stack:
            continue  # another thread (the logging and metrics threads wait)
        n = int(count)
        samples += n
        frames = [_short(f) for f in stack.split(";")[1:]]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return ["(py-spy: no sample of the serving thread)"]
    lines = [f"{samples} samples of the serving thread, {seconds:g} s"]
    lines += [f"own   {n / samples:6.1%}  {f}" for f, n in own.most_common(12)]
    lines += [
        f"total {n / samples:6.1%}  {f}"
        for f, n in total.most_common(200)
        if ("apps/" in f or "tenfold/" in f)
        and "Middleware" not in f
        and "cli/" not in f
        and "_app.py" not in f
    ][:14]
    return lines


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def _short(frame: str) -> str:
    # "func (path/to/file.py:12)" -> "func (file path after site-packages or repo)"
    frame = re.sub(r"\s*\(.*?(site-packages/|/work/[^/]+/)", " (", frame)
    return re.sub(r":\d+\)", ")", frame)


# -- sections ---------------------------------------------------------------------------------


async def mixed_and_realtime(
    args: argparse.Namespace, stack: Stack, plan: Plan, workdir: Path, results: Results
) -> None:
    f = results.figures
    channels = [f"tournament:{t}" for t in plan.tournaments]
    ws_url = _ws(stack.url)
    viewers = ViewerGroup(
        ws_url,
        channels,
        args.viewers,
        max(1, math.ceil(args.viewers / VIEWERS_PER_PROCESS)),
        workdir,
        "viewers",
    )
    leaderboard_paths = [f"/api/tournaments/{t}/leaderboard" for t in plan.tournaments]
    read_paths = []
    for n, match_id in enumerate(plan.matches):
        read_paths.append(f"/api/matches/{match_id}")
        read_paths.append(f"/api/tournaments/{plan.tournaments[n % len(plan.tournaments)]}/matches")
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30, limits=limits) as client:
        try:
            started = time.perf_counter()
            await viewers.start()
            f["realtime.viewers_opened"] = viewers.opened
            f["realtime.viewers_failed"] = viewers.failed
            f["realtime.connect_s"] = time.perf_counter() - started
            if viewers.errors:
                print(f"  viewers: {viewers.failed} failed, first: {viewers.errors[0]}")
            # Warm: every leaderboard cached once per process, as readers would have it.
            for path in leaderboard_paths * 4:
                await client.get(path)
            metrics_before = await cache_counts(client, stack.api_urls)
            pids = stack.pids()
            cpu_before = cpu_by_part(stack)
            seconds = args.seconds
            spy = None
            if args.profile:
                spy = asyncio.create_task(
                    _later(seconds / 3, profile(pids["api-1"][0], min(10.0, seconds / 3), workdir))
                )
            board, reads, writes = await asyncio.gather(
                run_wrk_lua(
                    stack.url,
                    leaderboard_paths,
                    args.leaderboard_connections,
                    seconds,
                    workdir,
                    "leaderboard",
                ),
                run_wrk_lua(
                    stack.url, read_paths, args.read_connections, seconds, workdir, "reads"
                ),
                write_scores(client, plan, args.write_rate, seconds, args.complete_after),
            )
            cpu_after = cpu_by_part(stack)
            top = await spy if spy is not None else []
            metrics_after = await cache_counts(client, stack.api_urls)
            await asyncio.sleep(args.drain)
            receipts = await viewers.stop()
        finally:
            await viewers.kill()

    # -- mixed
    write_n = len(writes.latencies_ms)
    total = board.requests + reads.requests + write_n
    span = max(board.seconds, reads.seconds, seconds)
    f["mixed.seconds"] = span
    f["mixed.requests"] = total
    f["mixed.req_per_s"] = total / span
    for name, run in (("leaderboard", board), ("reads", reads)):
        f[f"mixed.{name}_requests"] = run.requests
        f[f"mixed.{name}_share"] = run.requests / total if total else math.nan
        for q in (50, 95, 99):
            f[f"mixed.{name}_p{q}_ms"] = run.percentile(q)
        f[f"mixed.{name}_304"] = run.not_modified
    f["mixed.writes_requests"] = write_n
    f["mixed.writes_share"] = write_n / total if total else math.nan
    f["mixed.writes_per_s"] = write_n / span
    f["mixed.writes_409"] = writes.conflicts
    f["mixed.writes_completions"] = writes.completions
    f["mixed.writes_starts"] = writes.starts
    wsorted = sorted(writes.latencies_ms)
    for q in (50, 95, 99):
        f[f"mixed.writes_p{q}_ms"] = _pct(wsorted, q)
    classes = [
        (board.requests, board.percentiles_ms),
        (reads.requests, reads.percentiles_ms),
        (write_n, wsorted),
    ]
    for q in (50, 95, 99):
        f[f"mixed.p{q}_ms"] = mixture_percentile(classes, q)
    errors = board.socket_errors + board.bad + reads.socket_errors + reads.bad + writes.errors
    f["mixed.errors"] = errors
    f["mixed.leaderboard_hit_ratio"] = hit_ratio(metrics_before, metrics_after, "leaderboard")
    f["mixed.all_namespaces_hit_ratio"] = _all_ratio(metrics_before, metrics_after)
    cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    for name, value in cpu.items():
        f[f"mixed.cpu_s.{name}"] = value
    if writes.first_error:
        print(f"  first write error: {writes.first_error}")
    if writes.conflict_kinds:
        results.settings["mixed.writes_409_kinds"] = dict(writes.conflict_kinds.most_common(5))
        print(f"  409s: {dict(writes.conflict_kinds.most_common(5))}")

    # -- realtime
    viewers_per_tournament = collections.Counter(
        plan.tournaments[i % len(plan.tournaments)] for i in range(viewers.opened)
    )
    latencies, after_response = push_latencies(writes, receipts)
    expected = sum(viewers_per_tournament[writes.tournament_of_key[k]] for k in writes.sent)
    f["realtime.pushes_expected"] = expected
    f["realtime.pushes_received"] = len(latencies)
    f["realtime.lost"] = expected - len(latencies)
    lat = sorted(latencies)
    f["realtime.push_p50_ms"] = _pct(lat, 50)
    f["realtime.push_p99_ms"] = _pct(lat, 99)
    f["realtime.push_max_ms"] = lat[-1] if lat else math.nan
    after_response.sort()
    f["realtime.after_response_p50_ms"] = _pct(after_response, 50)
    f["realtime.after_response_p99_ms"] = _pct(after_response, 99)
    f["realtime.open_at_stop"] = receipts.open_at_stop
    results.settings["profile_api_1"] = "\n".join(top)

    print(f"\nmixed: {span:.0f} s through nginx; {viewers.opened:,} viewers connected")
    print(f"{'class':<14}{'requests':>10}{'share':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for name in ("leaderboard", "reads", "writes"):
        print(
            f"{name:<14}{f[f'mixed.{name}_requests']:>10,.0f}{f[f'mixed.{name}_share']:>8.1%}"
            + "".join(f"{_cell(f[f'mixed.{name}_p{q}_ms']):>9}" for q in (50, 95, 99))
        )
    print(
        f"{'overall':<14}{total:>10,.0f}{'':>8}"
        + "".join(f"{_cell(f[f'mixed.p{q}_ms']):>9}" for q in (50, 95, 99))
    )
    print(
        f"throughput {f['mixed.req_per_s']:,.0f} req/s; errors {errors:,.0f}; 409s (stale "
        f"version) {writes.conflicts}; {writes.completions} matches completed and "
        f"{writes.starts} started; 304s {board.not_modified + reads.not_modified}; "
        f"leaderboard hit ratio {_cell(f['mixed.leaderboard_hit_ratio'] * 100)} %"
    )
    print("CPU seconds during the load: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    print(
        f"\nrealtime: {len(writes.sent):,} writes pushed to {viewers.opened:,} viewers: "
        f"push p50 {_cell(f['realtime.push_p50_ms'])} ms, p99 {_cell(f['realtime.push_p99_ms'])} "
        f"ms, max {_cell(f['realtime.push_max_ms'])} ms; received {len(latencies):,} of "
        f"{expected:,} (lost {expected - len(latencies):,}); from the write's response to "
        f"receipt p50 {_cell(f['realtime.after_response_p50_ms'])} ms, p99 "
        f"{_cell(f['realtime.after_response_p99_ms'])} ms"
    )
    if top:
        print("\npy-spy, api-1 during the load:\n  " + "\n  ".join(top))


def push_latencies(writes: Writes, receipts: Any) -> tuple[list[float], list[float]]:
    """Per receipt of a timed write: ms since the write was sent, and since its response."""
    from_send, from_response = [], []
    for k, t in zip(receipts.keys, receipts.times, strict=True):
        sent = writes.sent.get(k)
        if sent is not None:
            from_send.append((t - sent) * 1000)
            from_response.append((t - writes.answered[k]) * 1000)
    return from_send, from_response


async def _later(delay: float, job: Any) -> Any:
    await asyncio.sleep(delay)
    return await job


def _all_ratio(before: collections.Counter[str], after: collections.Counter[str]) -> float:
    namespaces = {k.split("/")[0] for k in after}
    hits = misses = 0.0
    for ns in namespaces:
        ratio = hit_ratio(before, after, ns)
        lookups = sum(after[k] - before.get(k, 0) for k in after if k.startswith(ns + "/l1/"))
        if math.isfinite(ratio):
            hits += ratio * lookups
            misses += (1 - ratio) * lookups
    return hits / (hits + misses) if hits + misses else math.nan


async def connections(
    args: argparse.Namespace, stack: Stack, plan: Plan, workdir: Path, results: Results
) -> None:
    f = results.figures
    wanted = min(args.connections, args.nofile - 500)
    channels = [f"tournament:{t}" for t in plan.tournaments]
    ws_url = _ws(stack.url)
    group = ViewerGroup(
        ws_url, channels, wanted, max(1, math.ceil(wanted / VIEWERS_PER_PROCESS)), workdir, "idle"
    )
    pids = stack.pids()
    api = [p for name, tree in pids.items() if name.startswith("api-") for p in tree]
    rss_before = rss_mib(api)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        try:
            started = time.perf_counter()
            await group.start()
            f["connections.connect_s"] = time.perf_counter() - started
            writes = await write_scores(
                client, plan, args.idle_write_rate, args.idle, args.complete_after
            )
            await asyncio.sleep(args.drain)
            rss_after = rss_mib(api)
            receipts = await group.stop()
        finally:
            await group.kill()
    f["connections.wanted"] = args.connections
    f["connections.opened"] = group.opened
    f["connections.failed"] = group.failed
    f["connections.held"] = receipts.open_at_stop
    f["connections.with_pushes"] = receipts.clients_with_pushes
    f["connections.writes"] = len(writes.sent)
    idle_latencies = sorted(push_latencies(writes, receipts)[0])
    f["connections.pushes_received"] = len(idle_latencies)
    f["connections.push_p99_ms"] = _pct(idle_latencies, 99)
    f["connections.api_rss_growth_mib"] = rss_after - rss_before
    f["connections.nofile"] = args.nofile
    print(
        f"\nconnections: {group.opened:,} of {wanted:,} opened through nginx in "
        f"{f['connections.connect_s']:.1f} s ({group.failed:,} failed"
        + (f", first: {group.errors[0]}" if group.errors else "")
        + f"); held {receipts.open_at_stop:,} after {args.idle:g} s with {len(writes.sent)} "
        f"writes pushed; {receipts.clients_with_pushes:,} received pushes "
        f"({len(idle_latencies):,} timed receipts, p99 {_cell(f['connections.push_p99_ms'])} ms)"
        "; the API processes' "
        f"RSS grew {rss_after - rss_before:.0f} MiB"
    )


def _ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/realtime"


def _cell(value: float) -> str:
    return f"{value:.1f}" if math.isfinite(value) else "-"


# -- running ----------------------------------------------------------------------------------


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--seconds", type=float, default=60.0, help="mixed load duration (60)")
    add("--leaderboard-connections", type=int, default=16, help="wrk connections (16)")
    add("--read-connections", type=int, default=3, help="wrk connections, match reads (3)")
    add("--write-rate", type=float, default=50.0, help="writes per second (50)")
    add("--teams", type=int, default=8, help="teams per tournament, a round robin (8)")
    add("--complete-after", type=int, default=20, help="score updates per match (20)")
    add("--viewers", type=int, default=1000, help="WebSocket viewers during the load (1000)")
    add("--connections", type=int, default=10_000, help="idle viewers held (10000)")
    add("--idle", type=float, default=10.0, help="connections held for (10 s)")
    add("--idle-write-rate", type=float, default=10.0, help="writes/s while idle (10)")
    add("--drain", type=float, default=2.0, help="wait for pushes after the writes (2 s)")
    add("--tournaments", type=int, default=TOURNAMENTS, help="tournaments set up (20)")
    add("--no-profile", dest="profile", action="store_false", help="skip py-spy")
    add("--quick", action="store_true", help="seconds of load, few viewers: a smoke test")
    add("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.viewers, args.connections, args.idle = 2.0, 40, 100, 2.0
        args.tournaments = 4  # set up a request at a time: 20 take longer than the load
        args.leaderboard_connections, args.read_connections, args.write_rate = 4, 1, 10.0
        args.teams, args.complete_after = 4, 0
        args.profile = False
    return args


async def run(args: argparse.Namespace, stack: Stack, workdir: Path) -> Results:
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    results.figures["loadavg_1min_at_start"] = os.getloadavg()[0]
    results.settings.update({k: v for k, v in APP_ENV.items()})
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        plan = await prepare(client, args.tournaments, args.teams)
    print(
        f"{len(plan.tournaments)} tournaments, {len(plan.matches)} matches, {len(plan.live)} "
        f"live; open-files limit {args.nofile:,}; load average "
        f"{results.figures['loadavg_1min_at_start']:.2f}",
        flush=True,
    )
    await mixed_and_realtime(args, stack, plan, workdir, results)
    await connections(args, stack, plan, workdir, results)
    record(results, directory=args.results_dir)
    return results


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    args.nofile = raise_open_files_limit()
    with tempfile.TemporaryDirectory(prefix="tenfold-bench-tourney-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        stack = start_stack(workdir)
        try:
            asyncio.run(run(args, stack, workdir))
        finally:
            stack.launcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
