"""`make run-prod` (scripts/run-prod.sh -> scripts/run_prod.py): the production profile.

Each test starts the launcher as `make run-prod` would, on free loopback ports
with its data in a directory of the module's (the first test creates the
PostgreSQL primary and replica there, the next ones start them again), talks
to the app through nginx, and stops the launcher with SIGINT. Every process
the run started is recorded (the launcher's whole process tree, by pid and
start time) and must be gone when the launcher has exited.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tenfold.testing import allocate_port, release_port
from tenfold.testing._binaries import find_binary, find_pg_bindir
from tenfold.testing._plugin import _binaries_required

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "run-prod.sh"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def binaries() -> None:
    """The servers the launcher starts; missing: a skip, or a failure under CI=true."""
    with _binaries_required():
        find_pg_bindir()
        find_binary("redis-server")
        find_binary("nginx")


@pytest.fixture(scope="module")
def run_dir(binaries: None) -> Iterator[Path]:
    """RUN_PROD_DIR for the module: PostgreSQL (run as `postgres` under root) must enter it."""
    path = Path(tempfile.mkdtemp(prefix="tenfold-run-prod-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process; None if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _tree(root: int) -> dict[int, tuple[int, str]]:
    """Every descendant of ``root``: pid -> (start time, command line)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents.setdefault(stat[0], []).append(int(entry.name))
    found: dict[int, tuple[int, str]] = {}
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        stat = _stat(pid)
        if stat is not None:
            found[pid] = (stat[1], _cmdline(pid))
        todo.extend(parents.get(pid, []))
    return found


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    dir: Path
    port: int
    api_ports: list[int]
    output: Path
    seen: dict[int, tuple[int, str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self) -> dict[int, tuple[int, str]]:
        """Add the launcher's current process tree to ``seen``; return the tree."""
        tree = _tree(self.proc.pid)
        self.seen.update(tree)
        return tree

    def survivors(self) -> dict[int, str]:
        """Processes of this run still alive: seen ones (same start time) or any naming its dir."""
        alive = {
            pid: cmd
            for pid, (start, cmd) in self.seen.items()
            if (stat := _stat(pid)) is not None and stat[1] == start
        }
        for entry in os.scandir("/proc"):
            pid = int(entry.name) if entry.name.isdigit() else 0
            if pid and str(self.dir) in _cmdline(pid) and _stat(pid) is not None:
                alive[pid] = _cmdline(pid)
        return alive

    def log(self, name: str) -> str:
        return (self.dir / "logs" / name).read_text(errors="replace")

    def wait_recording(self, timeout: float) -> int:
        """Wait for the launcher to exit by itself, recording its tree meanwhile."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, self.output.read_text()
            self.record()
            time.sleep(0.05)
        return self.proc.returncode

    def interrupt(self) -> int:
        """SIGINT, as Ctrl-C; the launcher's exit status."""
        self.record()
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(STOP_TIMEOUT)


@contextmanager
def run_prod(run_dir: Path, app: str, **env: str) -> Iterator[Run]:
    """The launcher on free ports, its output in ``run_dir/output-N.log``; stopped at exit."""
    ports = [allocate_port() for _ in range(6)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TENFOLD_", "RUN_PROD_"))}
    environ.update(
        APP=app,
        VENV=str(Path(sys.executable).parents[1]),
        RUN_PROD_DIR=str(run_dir),
        RUN_PROD_PORT=str(ports[0]),
        RUN_PROD_API_PORTS=f"{ports[1]},{ports[2]}",
        RUN_PROD_PG_PORT=str(ports[3]),
        RUN_PROD_PG_REPLICA_PORT=str(ports[4]),
        RUN_PROD_REDIS_PORT=str(ports[5]),
        **env,
    )
    # The harness holds the ports' locks; the launcher checks they are free to bind.
    for port in ports:
        release_port(port)
    output = run_dir / f"output-{len(list(run_dir.glob('output-*.log')))}.log"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(SCRIPT)], cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT
        )
    run = Run(proc, run_dir, ports[0], ports[1:3], output)
    try:
        yield run
    finally:
        if proc.poll() is None:
            run.record()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for pid in run.survivors():  # a failed test must not leave servers behind
            os.kill(pid, signal.SIGKILL)


def wait_ready(run: Run) -> None:
    """Until GET /ready through nginx answers 200; fails with the launcher's output."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            pytest.fail(f"run-prod exited {run.proc.returncode}:\n{run.output.read_text()}")
        try:
            if httpx.get(f"{run.url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"run-prod not ready in {START_TIMEOUT:g} s:\n{run.output.read_text()}")


def assert_all_stopped(run: Run, status: int, expected: int = 0) -> None:
    assert status == expected, run.output.read_text()
    assert run.survivors() == {}


def _upstreams(run: Run) -> set[str]:
    lines = run.log("nginx-access.log").splitlines()
    return {part.split("=", 1)[1] for line in lines for part in line.split() if "upstream=" in part}


def _access_lines(run: Run, api: int) -> list[dict[str, object]]:
    lines = []
    for line in run.log(f"api-{api}.log").splitlines():
        if line.startswith("{") and '"tenfold.access"' in line:
            lines.append(json.loads(line))
    return lines


def test_hello_through_nginx_on_two_api_processes_then_sigint_stops_everything(
    run_dir: Path,
) -> None:
    """PostgreSQL primary + replica, Redis, two API processes and nginx come up; a write
    through nginx is readable, both API processes served requests, the client address
    behind nginx is believed; SIGINT stops every process of the run and exits 0."""
    with run_prod(run_dir, "apps.hello.main:app") as run:
        wait_ready(run)
        tree = run.record()
        commands = [cmd for _, cmd in tree.values()]
        assert sum(f"-D {run_dir}/pg-" in c for c in commands) == 2  # primary and replica
        assert sum("redis-server" in c for c in commands) == 1
        assert sum(c.startswith("nginx: master") for c in commands) == 1
        assert sum(" run --host 127.0.0.1" in c for c in commands) == 2
        assert not any(" worker" in c and "tenfold" in c for c in commands)  # hello has no jobs

        headers = {"X-API-Key": "run-prod", "Idempotency-Key": "note-1"}
        headers["X-Forwarded-For"] = "198.51.100.7"
        with httpx.Client(base_url=run.url, timeout=10) as client:
            created = client.post("/notes", json={"body": "through nginx"}, headers=headers)
            assert created.status_code == 201, created.text
            note_id = created.json()["id"]
            again = client.post("/notes", json={"body": "through nginx"}, headers=headers)
            assert again.headers.get("Idempotent-Replayed") == "true"
            assert again.json()["id"] == note_id
        # Reads until each API process has logged one (each over a new connection to nginx;
        # health probes are not in the access log). Round robin needs two; 50 is the bound.
        for _ in range(50):
            read = httpx.get(f"{run.url}/notes/{note_id}", timeout=10)
            assert read.status_code == 200
            assert read.json() == {"id": note_id, "body": "through nginx"}
            served = [_access_lines(run, 1), _access_lines(run, 2)]
            if all(any(line["route"] == "/notes/{note_id}" for line in s) for s in served):
                break
            time.sleep(0.1)  # the access line is written just after the response
        else:
            pytest.fail("one API process served no read:\n" + run.log("nginx-access.log"))
        assert _upstreams(run) == {f"127.0.0.1:{p}" for p in run.api_ports}
        posts = [line for lines in served for line in lines if line["method"] == "POST"]
        assert len(posts) == 2
        assert {line["client"] for line in posts} == {"198.51.100.7"}  # nginx is trusted
        assert f"serving on {run.url}" in run.output.read_text()

        assert_all_stopped(run, run.interrupt())
    out = run.output.read_text()
    order = [out.index(f"stopping {part}") for part in ("nginx", "api-", "redis", "pg-replica")]
    assert order == sorted(order)
    assert out.index("stopping pg-replica") < out.index("stopping pg-primary")


def test_an_app_with_jobs_gets_a_worker_that_runs_its_tasks(run_dir: Path) -> None:
    """With JobsExtension the launcher starts `tenfold worker` on Redis; a task enqueued
    through nginx runs there and writes to PostgreSQL; SIGINT stops the worker's pool too."""
    app = "tests.deploy.jobs_app:make_app"
    with run_prod(run_dir, app, RUN_PROD_WORKER_CONCURRENCY="1") as run:
        wait_ready(run)
        commands = [cmd for _, cmd in run.record().values()]
        assert sum("tenfold" in c and " worker" in c for c in commands) >= 2  # main + pool
        with httpx.Client(base_url=run.url, timeout=10) as client:
            body = f"from the worker {time.monotonic_ns()}"
            assert client.post("/jobs/notes", params={"body": body}).status_code == 202
            deadline = time.monotonic() + 30
            while (found := client.get("/jobs/notes", params={"body": body})).status_code == 404:
                assert time.monotonic() < deadline, run.log("worker.log")
                time.sleep(0.2)
            assert found.status_code == 200
        assert_all_stopped(run, run.interrupt())
    assert "stopping worker" in run.output.read_text()


def test_a_part_that_fails_to_start_stops_the_others_and_names_its_log(run_dir: Path) -> None:
    """An app that cannot be imported fails after PostgreSQL and Redis are up: the launcher
    stops them, exits 1 and names the part and its log."""
    with run_prod(run_dir, "no_such_module.main:app") as run:
        status = run.wait_recording(START_TIMEOUT)
        assert any("redis-server" in cmd for _, cmd in run.seen.values())
        assert_all_stopped(run, status, expected=1)
    out = run.output.read_text()
    assert "FAILED: app: " in out
    assert f"see {run_dir}/logs/app.log" in out
    assert "stopping redis" in out
    assert "stopping pg-primary" in out
