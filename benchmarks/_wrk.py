"""Shared benchmark plumbing: uvicorn servers in subprocesses, load from ``wrk``.

Usage from a ``bench_*.py`` module::

    with uvicorn_server("benchmarks.bench_x:make_app", cpu=1) as server:
        warm_up(server.url + "/items/1")
        result = run_wrk(server.url + "/items/1", connections=32, duration=8, cpu=0,
                         server=server)
    print(result.rps, result.p50_ms, result.p99_ms, result.cpu_us_per_request)

Each server is one uvicorn worker (uvloop + httptools) on a free loopback port,
with uvicorn's own access log off and its stdout sent to ``/dev/null`` unless a
file is given. On machines with two or more CPUs the server and ``wrk`` can be
pinned to different CPUs (``cpu=``) so they do not steal each other's time.

``script=`` gives wrk a Lua script (``wrk -s``), for requests that need headers
(a bearer token per simulated user, say): every run of a comparison then sends
the same requests to each server.

Throughput on a shared machine is noisy; the server's CPU time per request
(read from ``/proc/<pid>/stat`` around the run, when ``server=`` is given) is a
steadier measure of what the code costs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

__all__ = [
    "Server",
    "WrkResult",
    "add_load_arguments",
    "apply_quick",
    "compare_servers",
    "cpu_ratio",
    "find_wrk",
    "format_table",
    "free_port",
    "interleaved_rounds",
    "parse_wrk",
    "pin_cpus",
    "report_rounds",
    "run_wrk",
    "server_figures",
    "uvicorn_server",
    "warm_up",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run measured. Latencies in milliseconds."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int
    #: Server CPU seconds (user + system) per request, if the server was given.
    cpu_us_per_request: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.socket_errors == 0 and self.non_2xx == 0 and self.requests > 0


def find_wrk() -> str:
    """The wrk executable, or a RuntimeError saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pin_cpus() -> tuple[int | None, int | None]:
    """(server CPU, load-generator CPU), or ``(None, None)`` on a one-CPU machine."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    if len(cpus) < 2:
        return None, None
    return cpus[-1], cpus[0]


def _preexec(cpu: int | None):  # type: ignore[no-untyped-def]
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@dataclass(frozen=True, slots=True)
class Server:
    """A running server: its base URL and process id."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        # utime and stime are fields 14 and 15 of stat(5); index 0 here is field 3.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def uvicorn_server(
    app: str,
    *,
    factory: bool = True,
    env: Mapping[str, str] | None = None,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    cpu: int | None = None,
    ready_path: str = "/",
    extra_args: Sequence[str] = (),
    startup_timeout: float = 30.0,
    cwd: Path | None = None,
) -> Iterator[Server]:
    """Serve ``module:attr`` with one uvicorn worker; yields the running ``Server``.

    ``cwd`` (default: the repository) comes first on the server's import path.
    """
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        *(["--factory"] if factory else []),
        *extra_args,
    ]
    child_env = {**os.environ, **(env or {})}
    # A PYTHONPATH given in ``env`` comes first (another checkout of tenfold to compare).
    child_env["PYTHONPATH"] = os.pathsep.join(
        p
        for p in (
            (env or {}).get("PYTHONPATH", ""),
            str(REPO_ROOT),
            os.environ.get("PYTHONPATH", ""),
        )
        if p
    )
    proc = subprocess.Popen(
        args,
        cwd=cwd or REPO_ROOT,
        env=child_env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        preexec_fn=_preexec(cpu),
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, base_url + ready_path, startup_timeout)
        yield Server(base_url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode} before serving:\n{err}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.05)  # sync-ok: a benchmark driver, not tenfold code
    raise RuntimeError(f"server did not answer {url} within {timeout}s")


def warm_up(
    url: str,
    *,
    seconds: float = 1.0,
    connections: int = 32,
    cpu: int | None = None,
    script: Path | None = None,
) -> None:
    """A short unmeasured run, so caches and lazy paths are hot."""
    run_wrk(url, connections=connections, duration=seconds, cpu=cpu, script=script)


def run_wrk(
    url: str,
    *,
    threads: int = 1,
    connections: int = 32,
    duration: float = 8.0,
    cpu: int | None = None,
    server: Server | None = None,
    script: Path | None = None,
) -> WrkResult:
    """Load ``url`` with wrk (``--latency``) and parse what it reports.

    With ``server``, the result also has the server's CPU time per request;
    with ``script``, wrk runs that Lua script (``-s``) to make its requests.
    """
    args = [
        find_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        *(["-s", str(script)] if script is not None else []),
        url,
    ]
    cpu_before = server.cpu_seconds() if server is not None else float("nan")
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
        preexec_fn=_preexec(cpu),
    )
    cpu_used = (server.cpu_seconds() if server is not None else float("nan")) - cpu_before
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    result = parse_wrk(proc.stdout)
    if server is None or result.requests == 0:
        return result
    return replace(result, cpu_us_per_request=cpu_used / result.requests * 1e6)


def parse_wrk(output: str) -> WrkResult:
    """Parse wrk's text report (with ``--latency``)."""
    summary = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if summary is None or rps is None:
        raise ValueError(f"unrecognised wrk output:\n{output}")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(summary.group(1)),
        seconds=float(summary.group(2)) * _UNITS[summary.group(3)] / 1e3,
        rps=float(rps.group(1)),
        p50_ms=_percentile(output, "50"),
        p99_ms=_percentile(output, "99"),
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def _percentile(output: str, which: str) -> float:
    found = re.search(rf"^\s+{which}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    if found is None:
        return float("nan")
    return float(found.group(1)) * _UNITS[found.group(2)]


def format_table(rows: Sequence[tuple[str, WrkResult]]) -> str:
    """A fixed-width table of name, rps, p50, p99 and server CPU per request."""
    lines = [f"{'server':<16}{'rps':>10}{'p50 ms':>9}{'p99 ms':>9}{'cpu us/req':>12}{'errors':>8}"]
    for name, r in rows:
        errors = r.socket_errors + r.non_2xx
        lines.append(
            f"{name:<16}{r.rps:>10.1f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{r.cpu_us_per_request:>12.1f}{errors:>8}"
        )
    return "\n".join(lines)


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The wrk and round options every server benchmark takes (apply with ``apply_quick``)."""
    parser.add_argument("--threads", "-t", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--connections", "-c", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--duration", "-d", type=float, default=5.0, help="seconds per run (5)")
    # Many short rounds rather than a few long ones: each ratio is a median of per-round
    # ratios, and a shared VM's speed moves by tens of percent from one minute to the next.
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (6)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds (2)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/wrk to CPUs")
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s: a smoke test")


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    if args.quick:
        args.duration, args.rounds, args.warmup = 1.0, 1, 1.0
    return args


def interleaved_rounds(
    servers: Mapping[str, Server],
    path: str,
    args: argparse.Namespace,
    load_cpu: int | None,
    *,
    script: Path | None = None,
) -> dict[str, list[WrkResult]]:
    """``args.rounds`` rounds, each loading every server in turn, so drift hits all alike.

    Every other round runs the servers in reverse order: a machine slowing down (or
    speeding up) over a round then favours no server in particular. ``script`` is
    wrk's Lua script for every run (``run_wrk``).
    """
    runs: dict[str, list[WrkResult]] = {name: [] for name in servers}
    for round_no in range(args.rounds):
        order = list(servers.items())
        if round_no % 2:
            order.reverse()
        for name, server in order:
            result = run_wrk(
                server.url + path,
                threads=args.threads,
                connections=args.connections,
                duration=args.duration,
                cpu=load_cpu,
                server=server,
                script=script,
            )
            runs[name].append(result)
    return runs


def report_rounds(runs: Mapping[str, list[WrkResult]]) -> dict[str, WrkResult]:
    """Print the median round's table, the per-round spread and errors; return the medians."""
    best = {name: _median(results) for name, results in runs.items()}
    print(format_table(list(best.items())))
    for name, results in runs.items():
        if len(results) > 1:
            spread = ", ".join(f"{r.rps:.0f}" for r in results)
            stdev = statistics.pstdev(r.rps for r in results)
            print(f"  {name} rps per round: {spread} (stdev {stdev:.0f})")
    for name, result in best.items():
        if not result.ok:
            print(f"  warning: {name} had errors: {result}")
    return best


def server_figures(best: Mapping[str, WrkResult]) -> dict[str, float]:
    """The table's figures for each server, named ``<server>.req_per_s`` and so on."""
    figures: dict[str, float] = {}
    for name, r in best.items():
        figures[f"{name}.req_per_s"] = r.rps
        figures[f"{name}.p50_ms"] = r.p50_ms
        figures[f"{name}.p99_ms"] = r.p99_ms
        figures[f"{name}.cpu_us_per_req"] = r.cpu_us_per_request
        figures[f"{name}.errors"] = r.socket_errors + r.non_2xx
    return figures


def compare_servers(
    runs: Mapping[str, list[WrkResult]],
    best: Mapping[str, WrkResult],
    ours: Sequence[str],
    peers: Sequence[str],
) -> dict[str, float]:
    """Print and return each measured ``ours/peer`` ratio.

    ``"ours/peer"`` is by req/s: the median, over rounds, of the two servers'
    ratio *within* a round (measured seconds apart, so a shared VM's drift between
    rounds cancels out); ``"ours/peer.req_per_cpu_s"`` by server CPU time per
    request (``cpu_ratio``).
    """
    ratios: dict[str, float] = {}
    for mine in ours:
        for peer in peers:
            if mine in best and peer in best:
                by_rps = paired_ratio(runs[mine], runs[peer])
                by_cpu = cpu_ratio(runs[mine], runs[peer])
                print(f"ratio {mine}/{peer}: rps {by_rps:.3f}, cpu/request {by_cpu:.3f}")
                ratios[f"{mine}/{peer}"] = by_rps
                ratios[f"{mine}/{peer}.req_per_cpu_s"] = by_cpu
    return ratios


def paired_ratio(ours: list[WrkResult], peer: list[WrkResult]) -> float:
    """The median over rounds of ours/peer req/s, each pair from the same round."""
    return statistics.median(a.rps / b.rps for a, b in zip(ours, peer, strict=True) if b.rps)


def cpu_ratio(ours: list[WrkResult], peer: list[WrkResult]) -> float:
    """Median CPU per request of ``peer`` over ours: the throughput ratio CPU allows."""
    a = statistics.median(r.cpu_us_per_request for r in ours)
    b = statistics.median(r.cpu_us_per_request for r in peer)
    return b / a


def _median(results: list[WrkResult]) -> WrkResult:
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]
