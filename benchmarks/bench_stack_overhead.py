"""What tenfold's middleware costs: one JSON GET, served several ways in the same run.

- ``starlette``: bare Starlette, one route.
- ``fastapi``: bare FastAPI, the same handler.
- ``tenfold``: FastAPI + request id + access log (JSON to stdout, sent to
  /dev/null or ``--log-file``) + Prometheus metrics, as ``ObservabilityMiddleware``
  (one layer). The target is >= 0.9x ``fastapi``.
- ``tenfold-split``: the same with ``RequestContextMiddleware`` and
  ``TelemetryMiddleware`` stacked (two layers).
- ``tenfold-full``: ``tenfold`` plus the HTTP layer (``HttpMiddleware`` with its
  default settings: body limits, security headers), ProblemMiddleware,
  InFlightMiddleware and the problem+json handlers: everything create_app puts
  in front of a route except authentication, the database, rate limits and
  the response cache.

Each is one uvicorn worker (uvloop + httptools) in its own process; wrk loads
each in turn, for ``--rounds`` interleaved rounds, and the median round is
reported. Then, unless ``--no-instructions``, callgrind counts the
instructions one request costs in process (``_instructions``), a figure the
VM's noise does not move. Nothing is compared with stored numbers: ratios are between servers
measured here, now. The figures, ratios and the target go to
``benchmarks/results/bench_stack_overhead.json``.

    python -m benchmarks bench_stack_overhead [--quick]
    python -m benchmarks.bench_stack_overhead --duration 8 --connections 32
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from benchmarks._instructions import callgrind_available, instructions_per_request
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

_PATH = "/items/42"
_VARIANTS = ("starlette", "fastapi", "tenfold", "tenfold-split", "tenfold-full")
#: What docs/benchmarks.md holds the stack to; reported after each run, never enforced.
TARGETS = {
    "tenfold/fastapi": Target.at_least(0.9),
    # The same target on the figure the VM's noise does not move (no server: conservative).
    "tenfold/fastapi.requests_per_instruction": Target.at_least(0.9),
}


def make_starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": int(request.path_params["item_id"]), "name": "widget"})

    return Starlette(routes=[Route("/items/{item_id}", item)])


def _fastapi(middleware: list[Any]) -> Any:
    from fastapi import FastAPI

    app = FastAPI(middleware=middleware)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget"}

    return app


def make_fastapi() -> Any:
    return _fastapi([])


def _tenfold_middleware(*, full: bool = False, split: bool = False) -> list[Any]:
    from starlette.middleware import Middleware

    from tenfold import ObservabilitySettings
    from tenfold.health import InFlightMiddleware, Lifecycle
    from tenfold.observability import (
        Metrics,
        ObservabilityMiddleware,
        RequestContextMiddleware,
        TelemetryMiddleware,
        configure_logging,
    )
    from tenfold.web import HttpMiddleware, ProblemMiddleware

    configure_logging(ObservabilitySettings(), console=False)
    metrics = Metrics()
    if split:
        middleware = [
            Middleware(RequestContextMiddleware),
            Middleware(TelemetryMiddleware, metrics=metrics, access_log=True),
        ]
    else:
        middleware = [Middleware(ObservabilityMiddleware, metrics=metrics, access_log=True)]
    if full:
        middleware += [
            Middleware(HttpMiddleware),
            Middleware(ProblemMiddleware),
            Middleware(InFlightMiddleware, lifecycle=Lifecycle()),
        ]
    return middleware


def make_tenfold() -> Any:
    return _fastapi(_tenfold_middleware())


def make_tenfold_split() -> Any:
    return _fastapi(_tenfold_middleware(split=True))


def make_tenfold_full() -> Any:
    from tenfold.web import install_problem_handlers

    app = _fastapi(_tenfold_middleware(full=True))
    install_problem_handlers(app)
    return app


_FACTORIES = {
    "starlette": "benchmarks.bench_stack_overhead:make_starlette",
    "fastapi": "benchmarks.bench_stack_overhead:make_fastapi",
    "tenfold": "benchmarks.bench_stack_overhead:make_tenfold",
    "tenfold-split": "benchmarks.bench_stack_overhead:make_tenfold_split",
    "tenfold-full": "benchmarks.bench_stack_overhead:make_tenfold_full",
}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument("--log-file", help="write tenfold's access log here, not /dev/null")
    parser.add_argument(
        "--only", nargs="+", choices=_VARIANTS, default=list(_VARIANTS), help="servers to run"
    )
    parser.add_argument(
        "--no-instructions",
        action="store_true",
        help="skip the callgrind count of instructions per request",
    )
    return apply_quick(parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    find_wrk()
    server_cpu, load_cpu = (None, None) if args.no_pin else pin_cpus()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, "
        f"{args.rounds} round(s), GET {_PATH}, server cpu={server_cpu} wrk cpu={load_cpu}",
        flush=True,
    )
    with ExitStack() as stack:
        log: IO[bytes] | None = open(args.log_file, "ab") if args.log_file else None  # noqa: SIM115
        if log is not None:
            stack.enter_context(log)
        servers: dict[str, Server] = {}
        for name in args.only:
            stdout = log if (log is not None and name.startswith("tenfold")) else None
            server = stack.enter_context(
                uvicorn_server(_FACTORIES[name], cpu=server_cpu, ready_path=_PATH, **_out(stdout))
            )
            servers[name] = server
            warm_up(
                server.url + _PATH, seconds=args.warmup, connections=args.connections, cpu=load_cpu
            )
        runs = interleaved_rounds(servers, _PATH, args, load_cpu)
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    _report(runs, results)
    if not args.no_instructions and callgrind_available():
        _count_instructions(args, results)
    record(results)
    return 0


def _count_instructions(args: argparse.Namespace, results: Results) -> None:
    """Instructions per request in process (callgrind): the overhead without the VM's noise."""
    names = [n for n in ("fastapi", "tenfold", "tenfold-full") if n in args.only]
    low, high = (100, 400) if args.quick else (200, 1200)
    print("instructions per request (callgrind, in process, no server):")
    counts = {}
    for name in names:
        counts[name] = instructions_per_request(_FACTORIES[name], _PATH, low=low, high=high)
        results.figures[f"{name}.instructions_per_req"] = counts[name]
        print(f"  {name:14} {counts[name]:10,.0f}")
    if "fastapi" in counts:
        for name in ("tenfold", "tenfold-full"):
            if name in counts:
                ratio = counts["fastapi"] / counts[name]
                results.ratios[f"{name}/fastapi.requests_per_instruction"] = ratio
                print(f"ratio {name}/fastapi: requests per instruction {ratio:.3f}")


def _out(stdout: IO[bytes] | None) -> dict[str, Any]:
    return {"stdout": stdout} if stdout is not None else {}


def _report(runs: dict[str, list[WrkResult]], results: Results) -> None:
    best = report_rounds(runs)
    results.figures.update(server_figures(best))
    ours, peers = ("tenfold", "tenfold-split", "tenfold-full"), ("fastapi", "starlette")
    results.ratios.update(compare_servers(runs, best, ours, peers))


if __name__ == "__main__":
    sys.exit(main())
