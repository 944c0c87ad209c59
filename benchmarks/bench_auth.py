"""Auth: tenfold.auth's access tokens against PyJWT called bare, same key, same token, same run.

Sections (``SECTIONS``: each a function of the ``Bench`` returning the
figures and ratios it measured, so another can be added beside them):

1. **verify**: the time of one ``AccessTokens.verify(token)`` (header checks,
   signature, claims, the ``Principal`` built) against one bare
   ``jwt.decode(token, public_key, algorithms=[alg], audience=..., issuer=...)``
   with the same public key object and the same token, for EdDSA and ES256.
   Timeit-style: ``--number`` calls per timing, ``--rounds`` x ``--repeat``
   timings per side, the sides taking turns (which goes first swaps every
   turn), the best timing of each side kept. Target (reported, never enforced):
   ours <= 1.2x PyJWT's time, i.e. what tenfold adds on top of PyJWT stays
   under a fifth of a bare verification.

2. **full_stack**: requests per second of one authenticated JSON GET,
   ``GET /items/42`` with ``Authorization: Bearer <token>``, served by
   bench_full_stack's stack with tenfold.auth in it, against bare FastAPI
   verifying the same tokens with ``jwt.decode``; the apps are in
   ``benchmarks/_apps_auth.py``. Ours: ``create_app(extensions=[AuthExtension(
   roles=...)])``, the route requiring ``items:read`` (``Depends(require(...))``),
   a per-user rate limit in lease mode over Redis and the response cached per
   user (``cache_response(per_user=True)``), on top of the request id, access
   log, metrics and problem handlers. The peer: FastAPI, ``HTTPBearer``, and a
   dependency calling ``jwt.decode(token, public_key, algorithms=["EdDSA"],
   audience=..., issuer=...)`` and checking the role claim. The signing key is
   written to a key file (``TENFOLD_AUTH__KEYS_FILE``) before either server
   starts; this process issues one token per simulated user (``--users``) with
   ``AccessTokens`` over that key, and the peer verifies them with its public
   key. wrk (a Lua script sending each user's token in turn, the same script
   for both sides) loads each server in turn for ``--stack-rounds``
   interleaved rounds, each a uvicorn worker pinned to its own CPU, on a fresh
   redis-server and a temporary SQLite database (the auth tables). Before
   loading, both sides must answer every user's token with the same JSON, and
   ours must show its per-user cache hit and rate-limit headers. Reported: the
   median round's req/s, p50/p99 latency and server CPU per request; the ratio
   ours/peer by req/s (median of per-round ratios) and by CPU per request.
   Target (reported, never enforced): ours >= 1.0x the peer's req/s.

Section 1 runs in this process; section 2 needs ``wrk`` and ``redis-server``.

    python -m benchmarks bench_auth [--quick]
    python -m benchmarks.bench_auth --sections full_stack --users 16 --duration 8
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import timeit
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

if not __package__:  # run as a file, not with -m: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._apps_auth import APP_NAME, ROLE
from benchmarks._results import Results, Target, record
from benchmarks._wrk import (
    Server,
    compare_servers,
    find_wrk,
    interleaved_rounds,
    pin_cpus,
    report_rounds,
    server_figures,
    uvicorn_server,
    warm_up,
)
from tenfold import Principal
from tenfold.auth import AccessTokens, KeySet
from tenfold.auth._keys_cli import write_key_file
from tenfold.testing import RedisServer

PEER = "pyjwt"
ALGORITHMS = ("EdDSA", "ES256")
ISSUER = "https://bench.tenfold.test"
AUDIENCE = "bench-api"
STACK_PEER = "fastapi"
STACK_PATH = "/items/42"
#: The uvicorn factories of section 2, ours first.
STACK_APPS = {
    "tenfold": "benchmarks._apps_auth:make_tenfold",
    STACK_PEER: "benchmarks._apps_auth:make_fastapi",
}
#: Reported after each run, never enforced.
TARGETS = {
    **{f"tenfold/{PEER}.verify_us.{alg}": Target.at_most(1.2) for alg in ALGORITHMS},
    f"tenfold/{STACK_PEER}.full_stack.req_per_s": Target.at_least(1.0),
}
SectionResult = dict[str, dict[str, float]]


@dataclass(slots=True)
class Bench:
    """What every section works with: the options."""

    args: argparse.Namespace


# -- 1. verify ---------------------------------------------------------------------------------


def verify(bench: Bench) -> SectionResult:
    """Microseconds per verification, ours and bare PyJWT's, per algorithm; best of the rounds."""
    args = bench.args
    figures: dict[str, float] = {}
    ratios: dict[str, float] = {}
    print(f"\n{'verify (us/call)':<18}{'tenfold':>10}{PEER:>10}{'ratio':>8}")
    for algorithm in ALGORITHMS:
        ours, peer = _sides(algorithm)
        best = {"tenfold": float("inf"), PEER: float("inf")}
        sides = (("tenfold", ours), (PEER, peer))
        # One timing of each side in turn, so that both sample the same moments of the
        # machine's other load (this figure is the minimum, which load only ever raises).
        for turn in range(args.rounds * args.repeat):
            for side, call in sides if turn % 2 == 0 else sides[::-1]:
                best[side] = min(best[side], _per_call_us(call, args.number))
        ratio = best["tenfold"] / best[PEER]
        figures[f"tenfold.verify_us.{algorithm}"] = best["tenfold"]
        figures[f"{PEER}.verify_us.{algorithm}"] = best[PEER]
        ratios[f"tenfold/{PEER}.verify_us.{algorithm}"] = ratio
        print(f"{algorithm:<18}{best['tenfold']:>10.1f}{best[PEER]:>10.1f}{ratio:>7.2f}x")
    print(
        "  (tenfold: AccessTokens.verify, header checks and the Principal included; "
        f"{PEER}: jwt.decode with the same key object, audience and issuer)"
    )
    return {"figures": figures, "ratios": ratios}


def _sides(algorithm: str) -> tuple[Callable[[], object], Callable[[], object]]:
    """Verifying one token: ours, and PyJWT's with the same public key object."""
    keys = KeySet.generate(algorithm)
    tokens = AccessTokens(keys, issuer=ISSUER, audience=AUDIENCE, algorithm=algorithm)
    token = tokens.issue(Principal("user-1", roles={"staff"}, scopes={"read", "write"}))
    ours = functools.partial(tokens.verify, token)
    peer = functools.partial(
        jwt.decode,
        token,
        keys.active.public_key,
        algorithms=[algorithm],
        audience=AUDIENCE,
        issuer=ISSUER,
    )
    # Both sides must accept the token, or the timing would be of a refusal.
    if ours().id != "user-1" or peer()["sub"] != "user-1":
        raise RuntimeError(f"{algorithm}: a side refused the token")
    return ours, peer


def _per_call_us(call: Callable[[], object], number: int) -> float:
    """One timing of ``number`` calls, per call, in microseconds."""
    return timeit.timeit(call, number=number) / number * 1e6


# -- 2. full_stack -----------------------------------------------------------------------------


def full_stack(bench: Bench) -> SectionResult:
    """Req/s, latency and CPU per request of the authenticated GET, ours and bare FastAPI's."""
    args = bench.args
    find_wrk()
    server_cpu, load_cpu = (None, None) if args.no_pin else pin_cpus()
    print(
        f"\nfull_stack: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s "
        f"--latency, {args.stack_rounds} round(s), GET {STACK_PATH} as {args.users} user(s), "
        f"server cpu={server_cpu} wrk cpu={load_cpu}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="tenfold-bench-auth-"))
    redis = RedisServer.launch(workdir)
    try:
        tokens = _stack_tokens(workdir, args.users)
        script = _token_script(workdir / "tokens.lua", list(tokens.values()))
        env = {
            "BENCH_REDIS_URL": redis.url,
            "BENCH_PUBLIC_KEY_PEM": str(workdir / "public.pem"),
            "TENFOLD_AUTH__KEYS_FILE": str(workdir / "keys.json"),
            "TENFOLD_DB__URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        }
        with ExitStack() as stack:
            servers: dict[str, Server] = {}
            for name, factory in STACK_APPS.items():
                servers[name] = stack.enter_context(
                    uvicorn_server(factory, cpu=server_cpu, ready_path=STACK_PATH, env=env)
                )
            _check_sides(servers, tokens)
            for server in servers.values():
                warm_up(
                    server.url + STACK_PATH,
                    seconds=args.warmup,
                    connections=args.connections,
                    cpu=load_cpu,
                    script=script,
                )
            load = argparse.Namespace(
                rounds=args.stack_rounds,
                threads=args.threads,
                connections=args.connections,
                duration=args.duration,
            )
            runs = interleaved_rounds(servers, STACK_PATH, load, load_cpu, script=script)
    finally:
        redis.close()
        shutil.rmtree(workdir, ignore_errors=True)
    best = report_rounds(runs)
    figures = {
        f"{name}.full_stack.{measure}": value
        for name_measure, value in server_figures(best).items()
        for name, measure in [name_measure.split(".", 1)]
    }
    figures["full_stack.users"] = args.users
    figures["loadavg_1min_after_full_stack"] = os.getloadavg()[0]
    compared = compare_servers(runs, best, ["tenfold"], [STACK_PEER])
    ratios = {
        f"tenfold/{STACK_PEER}.full_stack.req_per_s": compared[f"tenfold/{STACK_PEER}"],
        f"tenfold/{STACK_PEER}.full_stack.req_per_cpu_s": compared[
            f"tenfold/{STACK_PEER}.req_per_cpu_s"
        ],
    }
    print(
        "  (tenfold: create_app + AuthExtension, require(), per-user lease rate limit and "
        f"per-user HTTP cache; {STACK_PEER}: HTTPBearer + jwt.decode + a role check)"
    )
    return {"figures": figures, "ratios": ratios}


def _stack_tokens(workdir: Path, users: int) -> dict[str, str]:
    """Write the key file and the peer's public key; one token per user, by user id.

    The tokens are issued here, as the app's own ``AccessTokens`` would issue them:
    the key read back from the file the app reads, its name as issuer and audience.
    """
    path = workdir / "keys.json"
    write_key_file(path, KeySet.generate("EdDSA"))
    keys = KeySet.from_json(path.read_text())
    public = keys.active.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (workdir / "public.pem").write_bytes(public)
    # Valid for the whole run (a full run takes a few minutes).
    tokens = AccessTokens(keys, issuer=APP_NAME, audience=APP_NAME, ttl=3600, algorithm="EdDSA")
    ids = [f"bench-user-{n}" for n in range(users)]
    return {user: tokens.issue(Principal(user, roles={ROLE})) for user in ids}


def _token_script(path: Path, tokens: list[str]) -> Path:
    """A wrk Lua script: each wrk thread sends the users' tokens in turn (requests built once)."""
    listed = ",\n".join(f'  "{token}"' for token in tokens)
    path.write_text(
        f"local tokens = {{\n{listed}\n}}\n"
        "local requests = {}\n"
        "local turn = 0\n"
        "init = function(args)\n"
        "  for i, token in ipairs(tokens) do\n"
        '    requests[i] = wrk.format(nil, nil, {["Authorization"] = "Bearer " .. token})\n'
        "  end\n"
        "end\n"
        "request = function()\n"
        "  turn = turn % #requests + 1\n"
        "  return requests[turn]\n"
        "end\n"
    )
    return path


def _check_sides(servers: Mapping[str, Server], tokens: Mapping[str, str]) -> None:
    """Both sides answer each user the same JSON and refuse a request without a token;
    ours serves a user's second request from that user's cache entry, rate limited."""
    for name, server in servers.items():
        url = server.url + STACK_PATH
        status, _, _ = _get(url, None)
        if status not in (401, 403):
            raise RuntimeError(f"{name}: a request without a token got {status}")
        for user, token in tokens.items():
            expected = {"id": 42, "name": "widget", "user": user}
            for attempt in (1, 2):
                status, headers, body = _get(url, token)
                if status != 200 or body != expected:
                    raise RuntimeError(f"{name}: {user}'s request {attempt}: {status} {body}")
            if name == "tenfold":
                cache_control = headers.get("cache-control", "")
                if "age" not in headers or not cache_control.startswith("private"):
                    raise RuntimeError(f"tenfold: {user}'s second request was no per-user hit")
                if "ratelimit-limit" not in headers:
                    raise RuntimeError(f"tenfold: {user}'s request was not rate limited")


def _get(url: str, token: str | None) -> tuple[int, dict[str, str], object]:
    """Status, lower-cased headers and JSON body of one GET, with the bearer token if given."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, None


SECTIONS: tuple[Callable[[Bench], SectionResult], ...] = (verify, full_stack)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per timing (2000)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per round, best kept (5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, sides alternating (3)")
    stack = parser.add_argument_group("full_stack (wrk against uvicorn)")
    stack.add_argument("--threads", "-t", type=int, default=1, help="wrk threads (1)")
    stack.add_argument("--connections", "-c", type=int, default=32, help="wrk connections (32)")
    stack.add_argument("--duration", "-d", type=float, default=5.0, help="seconds per run (5)")
    # Many short rounds rather than a few long ones, as in bench_full_stack: the ratio is
    # the median of per-round ratios, and a shared machine's speed drifts minute to minute.
    stack.add_argument("--stack-rounds", type=int, default=6, help="interleaved rounds (6)")
    stack.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds (2)")
    stack.add_argument("--users", type=int, default=8, help="users, one token each (8)")
    stack.add_argument("--no-pin", action="store_true", help="do not pin server/wrk to CPUs")
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=[section.__name__ for section in SECTIONS],
        default=[section.__name__ for section in SECTIONS],
        help="sections to run (all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 round, 1 s runs, 2 users: a smoke test"
    )
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.users < 1:
        parser.error("--users must be at least 1")
    if args.quick:
        args.number, args.repeat, args.rounds = 50, 2, 1
        args.duration, args.stack_rounds, args.warmup, args.users = 1.0, 1, 1.0, 2
    return args


def run(args: argparse.Namespace) -> Results:
    """Run every section; print; write the results file."""
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    # Other work on the machine moves every figure: the load it started under is kept.
    results.figures["loadavg_1min_at_start"] = os.getloadavg()[0]
    print(
        f"{args.rounds} round(s) of the best of {args.repeat} x {args.number} calls; "
        f"load average {results.figures['loadavg_1min_at_start']:.2f}",
        flush=True,
    )
    bench = Bench(args)
    for section in SECTIONS:
        if section.__name__ not in args.sections:
            continue
        measured = section(bench)
        results.figures.update(measured["figures"])
        results.ratios.update(measured["ratios"])
    record(results, directory=args.results_dir)
    return results


def main(argv: list[str] | None = None) -> int:
    run(arguments(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
