"""Stampede protection across OS processes: 1000 cold calls, 3 processes, exactly 1 load."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tenfold.testing import RedisCluster, RedisServer

WORKER = Path(__file__).with_name("_stampede_worker.py")
CALLS = 1000
PROCESSES = 3
BOUND = 60.0


def _run_stampede(target: str, counter_client) -> tuple[list[dict], int]:
    """Start the workers, let them all go at once, collect their results and the count."""
    part, counter = uuid.uuid4().hex, f"stampede-count-{uuid.uuid4().hex}"
    shares = [CALLS // PROCESSES + (i < CALLS % PROCESSES) for i in range(PROCESSES)]
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), target, part, counter, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in shares
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            while (line := worker.stdout.readline()) and line.strip() != "ready":
                pass  # log lines before it
            assert line, "a worker exited before it was ready"
        for worker in workers:  # all are connected: release them together
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, _ = worker.communicate(timeout=BOUND)
            assert worker.returncode == 0
            results.append(json.loads([x for x in out.splitlines() if x.startswith("{")][-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return results, int(counter_client.get(counter) or 0)


@pytest.mark.slow
def test_one_load_for_1000_calls_across_3_processes(redis_server: RedisServer) -> None:
    """1000 concurrent cold get_or_load calls spread over 3 processes call the loader once."""
    results, loads = _run_stampede(redis_server.url, redis_server.client())
    values = [v for r in results for v in r["values"]]
    assert len(values) == CALLS
    assert loads == 1
    assert values == [{"loaded": 1}] * CALLS
    # Each process shared one fill among its callers; the others waited on the lock holder.
    assert sum(r["merges"] for r in results) == CALLS - PROCESSES


@pytest.mark.slow
def test_one_load_across_processes_on_cluster(redis_cluster: RedisCluster) -> None:
    """The same exactly-once fill holds on Redis Cluster."""
    results, loads = _run_stampede(",".join(redis_cluster.startup_nodes), redis_cluster.client())
    assert loads == 1
    assert [v for r in results for v in r["values"]] == [{"loaded": 1}] * CALLS
