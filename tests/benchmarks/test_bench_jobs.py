"""bench_jobs --quick: the file it writes, and that every task sent ran exactly once.

The quick run is made once for the module (about 20 s: two workers started
and stopped). Only counts and the file's shape are checked, never a time.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from benchmarks import bench_jobs as bench
from tenfold.testing import PgCluster, RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

QUICK = bench.arguments(["--quick"])
MEASURES = (
    "enqueue_per_s",
    "drain_tasks_per_s",
    "tasks_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "tasks_sent",
    "tasks_ran",
    "effect_tasks_per_s",
    "effect_rows",
)


@pytest.fixture(scope="module")
async def document(
    redis_server: RedisServer, pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
):
    """The JSON a quick run against the harness Redis and PostgreSQL primary writes."""
    directory = tmp_path_factory.mktemp("results")
    database = pg_cluster.create_database()
    args = bench.arguments(["--quick", "--results-dir", str(directory), "--pg-db", database])
    try:
        await bench.run(args, redis_server.url, pg_cluster.primary, tmp_path_factory.mktemp("work"))
    finally:
        pg_cluster.drop_database(database)
    return json.loads((directory / "bench_jobs.json").read_text())


def test_file_has_the_shared_shape(document: dict[str, Any]) -> None:
    """The file has the shape every benchmark writes, marked quick, with only finite numbers."""
    assert set(document) == {"name", "machine", "when", "quick", "figures", "ratios", "targets"}
    assert document["name"] == "bench_jobs"
    assert document["quick"] is True
    numbers = [*document["figures"].values(), *document["ratios"].values()]
    assert all(v is not None and math.isfinite(v) and v > 0 for v in numbers)
    assert document["targets"] == {k: t.as_json() for k, t in bench.TARGETS.items()}


def test_both_sides_are_measured_and_compared(document: dict[str, Any]) -> None:
    """Every measure exists for tenfold and plain Celery, and the ratios are tenfold's over
    plain Celery's throughputs (and enqueue rate in a thread)."""
    assert set(document["figures"]) == {
        *(f"{s}.{m}" for s in bench.SIDES for m in MEASURES),
        "plain-celery-in-thread.enqueue_per_s",
        "tenfold.outbox_enqueue_per_s",
        "tenfold.outbox10_enqueue_per_s",
    }
    assert set(document["ratios"]) == {
        "tenfold/plain-celery",
        "tenfold/plain-celery.enqueue_per_s",
        "tenfold/plain-celery-in-thread.enqueue_per_s",
        "tenfold/plain-celery.drain_tasks_per_s",
        "tenfold/plain-celery.effect_tasks_per_s",
        "tenfold/plain-celery.outbox_enqueue_per_s",
        "tenfold/plain-celery.outbox10_enqueue_per_s",
    }


def test_every_task_sent_ran_exactly_once(document: dict[str, Any]) -> None:
    """On both sides the backlog, the end-to-end batch and the paced tasks all ran, none twice."""
    expected = QUICK.rounds * (3 * QUICK.tasks + int(QUICK.rate * QUICK.latency_seconds))
    for side in bench.SIDES:
        assert document["figures"][f"{side}.tasks_sent"] == expected
        assert document["figures"][f"{side}.tasks_ran"] == expected
        assert document["figures"][f"{side}.effect_rows"] == QUICK.rounds * QUICK.tasks
