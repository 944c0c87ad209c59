"""bench_events --quick: the file it writes, both sides of every section, every event handled.

The quick run is made once for the module (about 20 s) on the harness
primary and Redis. Only counts and the file's shape are checked, never a time.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from benchmarks import bench_events as bench
from benchmarks._events_sides import PEER
from tenfold.testing import PgCluster, RedisServer

pytestmark = [pytest.mark.slow]

QUICK = bench.arguments(["--quick"])
SIDES = ("tenfold", PEER)
PLACES = ("other_process", "same_process")


@pytest.fixture(scope="module")
async def document(
    pg_cluster: PgCluster, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
):
    """The JSON a quick run against the harness PostgreSQL primary writes."""
    directory = tmp_path_factory.mktemp("results")
    ours, peer = pg_cluster.create_database(), pg_cluster.create_database()
    argv = ["--quick", "--results-dir", str(directory), "--tenfold-db", ours, "--peer-db", peer]
    try:
        await bench.run(
            bench.arguments(argv),
            pg_cluster.primary,
            tmp_path_factory.mktemp("work"),
            redis_server.url,
        )
    finally:
        pg_cluster.drop_database(ours)
        pg_cluster.drop_database(peer)
    return json.loads((directory / "bench_events.json").read_text())


def test_file_has_the_shared_shape_and_the_server_settings(document: dict[str, Any]) -> None:
    """The file has the shared shape, marked quick, with the commit settings it ran under."""
    assert set(document) == {
        *("name", "machine", "when", "quick", "figures", "ratios", "targets", "settings")
    }
    assert document["name"] == "bench_events"
    assert document["quick"] is True
    assert {"fsync", "synchronous_commit"} <= set(document["settings"])
    assert document["targets"] == {k: t.as_json() for k, t in bench.TARGETS.items()}


def test_both_sides_are_measured_and_compared(document: dict[str, Any]) -> None:
    """Appends with 1 and 16 writers and lag in both places exist for both sides, with ratios."""
    figures, ratios = document["figures"], document["ratios"]
    measures = [
        *(f"appends_per_s.w{w}" for w in bench.WRITERS),
        *(f"lag_{p}_{q}_ms" for p in PLACES for q in ("p50", "p99")),
    ]
    for measure in measures:
        for side in SIDES:
            assert math.isfinite(figures[f"{side}.{measure}"])
        assert math.isfinite(ratios[f"tenfold/{PEER}.{measure}"])
    assert all(figures[f"{s}.appends_per_s.w{w}"] > 0 for s in SIDES for w in bench.WRITERS)


def test_every_paced_event_reached_each_subscriber(document: dict[str, Any]) -> None:
    """Each subscriber, in each place, handled every event the paced writers appended."""
    expected = QUICK.rounds * int(QUICK.rate * QUICK.lag_seconds)
    for side in SIDES:
        for place in bench.WHERES[side]:
            assert document["figures"][f"{side}.lag_{place}_events"] == expected


def test_aggregate_loads_are_measured(document: dict[str, Any]) -> None:
    """Loading the aggregate from the log alone and from its snapshot are both measured."""
    figures = document["figures"]
    assert figures["aggregate_events"] == QUICK.aggregate_events
    for source in ("from_log", "from_snapshot"):
        assert figures[f"tenfold.aggregate_load_{source}_ms"] > 0
