"""One cached JSON GET served four ways in the same run (compass P1 and P2).

- ``fastapi``: bare FastAPI, one route.
- ``starlette``: bare Starlette, the same handler.
- ``tenfold-exact``: ``create_app`` (request id, access log, Prometheus metrics,
  problem handlers, rate limit, HTTP response cache via ``cache_response``), the
  limit set through settings: one generous app-wide rule per client address,
  Redis exact mode (GCRA).
- ``tenfold-lease``: the same in local-lease mode (``TENFOLD_RATELIMIT__MODE=lease``,
  default lease size).
- ``tenfold-nolimit`` (opt-in, ``--only``): ``create_app`` with no rate-limit policy.
- ``assembled``: what a FastAPI user would put together today: FastAPI +
  slowapi (Redis storage) + fastapi-cache2 (Redis backend) +
  prometheus-fastapi-instrumentator + asgi-correlation-id.

The apps live in ``benchmarks/_apps_full_stack.py``. Each is one uvicorn worker
(uvloop + httptools) in its own process, on one fresh redis-server (never
``TENFOLD_TEST_REDIS_URL``: the run starts from an empty Redis). wrk loads
each in turn with the same settings, for ``--rounds`` interleaved rounds; the
median round is reported, with the server's CPU time per request. Targets
(``TARGETS``, by req/s): ``tenfold-lease`` >= 1.3x ``fastapi`` and >= 10x
``assembled``. The figures, ratios and targets go to
``benchmarks/results/bench_full_stack.json``.

    python -m benchmarks bench_full_stack [--quick]
    python -m benchmarks.bench_full_stack --duration 8 --connections 32
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks._results import Results, Target, record
from benchmarks._wrk import (
    Server,
    WrkResult,
    add_load_arguments,
    apply_quick,
    compare_servers,
    find_wrk,
    interleaved_rounds,
    pin_cpus,
    report_rounds,
    server_figures,
    uvicorn_server,
    warm_up,
)
from tenfold.testing import RedisServer

_PATH = "/items/42"
_VARIANTS = ("fastapi", "starlette", "tenfold-exact", "tenfold-lease", "assembled")
#: Opt-in with --only: create_app without the rate limiter, to see what the limiter costs.
_EXTRA = ("tenfold-nolimit",)
_FACTORIES = {
    "fastapi": "benchmarks._apps_full_stack:make_fastapi",
    "starlette": "benchmarks._apps_full_stack:make_starlette",
    "tenfold-exact": "benchmarks._apps_full_stack:make_tenfold_exact",
    "tenfold-lease": "benchmarks._apps_full_stack:make_tenfold_lease",
    "assembled": "benchmarks._apps_full_stack:make_assembled",
    "tenfold-nolimit": "benchmarks._apps_full_stack:make_tenfold_nolimit",
}
#: What the full stack is held to; reported after each run, never enforced.
TARGETS = {
    "tenfold-lease/fastapi": Target.at_least(1.3),
    "tenfold-lease/assembled": Target.at_least(10),
}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=_VARIANTS + _EXTRA,
        default=list(_VARIANTS),
        help="servers to run",
    )
    return apply_quick(parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    find_wrk()
    names = list(args.only)
    server_cpu, load_cpu = (None, None) if args.no_pin else pin_cpus()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, "
        f"{args.rounds} round(s), GET {_PATH}, server cpu={server_cpu} wrk cpu={load_cpu}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="tenfold-bench-"))
    redis = RedisServer.launch(workdir)
    try:
        with ExitStack() as stack:
            servers: dict[str, Server] = {}
            for name in names:
                servers[name] = stack.enter_context(
                    uvicorn_server(
                        _FACTORIES[name],
                        cpu=server_cpu,
                        ready_path=_PATH,
                        env={"BENCH_REDIS_URL": redis.url},
                    )
                )
                warm_up(
                    servers[name].url + _PATH,
                    seconds=args.warmup,
                    connections=args.connections,
                    cpu=load_cpu,
                )
            runs = interleaved_rounds(servers, _PATH, args, load_cpu)
    finally:
        redis.close()
        shutil.rmtree(workdir, ignore_errors=True)
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    _report(runs, results)
    record(results)
    return 0


def _report(runs: dict[str, list[WrkResult]], results: Results) -> None:
    best = report_rounds(runs)
    results.figures.update(server_figures(best))
    ours = ("tenfold-exact", "tenfold-lease", "tenfold-nolimit")
    peers = ("fastapi", "starlette", "assembled")
    results.ratios.update(compare_servers(runs, best, ours, peers))


if __name__ == "__main__":
    sys.exit(main())
