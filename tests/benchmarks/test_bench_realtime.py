"""bench_realtime --quick: the file it writes, and what every section measured of each side.

The quick run is made once for the module (about 10 s) on the harness Redis.
Only counts and the file's shape are checked, never a time.
"""

from __future__ import annotations

import json
import math
import resource
from typing import Any

import pytest

from benchmarks import bench_realtime as bench
from tenfold.testing import RedisServer

pytestmark = [pytest.mark.slow]

QUICK = bench.arguments(["--quick"])
FANOUTS = {"fanout": QUICK.subscribers, "fanout_unbatched": QUICK.unbatched_subscribers}


@pytest.fixture(scope="module")
async def document(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory):
    """The JSON a quick run against the harness Redis writes."""
    directory = tmp_path_factory.mktemp("results")
    args = bench.arguments(["--quick", "--results-dir", str(directory)])
    # The run raises this process's open-files limit for its connections: put it back, so
    # the servers later tests start (Redis sizes maxclients by it) see what they always do.
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        await bench.run(args, redis_server.url, tmp_path_factory.mktemp("work"))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    return json.loads((directory / "bench_realtime.json").read_text())


def test_file_has_the_shared_shape(document: dict[str, Any]) -> None:
    """The file has the shared shape, marked quick, with every target listed."""
    assert set(document) == {"name", "machine", "when", "quick", "figures", "ratios", "targets"}
    assert document["name"] == "bench_realtime"
    assert document["quick"] is True
    assert document["targets"] == {k: t.as_json() for k, t in bench.TARGETS.items()}


def test_every_side_delivers_each_publication_once_to_each_subscriber(
    document: dict[str, Any],
) -> None:
    """In both fan-outs every side's subscribers got each publication exactly once."""
    figures = document["figures"]
    published = int(QUICK.rate * QUICK.seconds)
    for side in bench.SIDES:
        for key, subscribers in FANOUTS.items():
            prefix = f"{side}.{key}"
            assert figures[f"{prefix}_subscribers"] == subscribers
            assert figures[f"{prefix}_expected"] == subscribers * published
            assert figures[f"{prefix}_deliveries"] == subscribers * published
            assert figures[f"{prefix}_lost"] == 0
            assert figures[f"{prefix}_duplicated"] == 0
            assert figures[f"{prefix}_silent_subscribers"] == 0
            for measure in ("deliveries_per_s", "p50_ms", "p99_ms"):
                assert math.isfinite(figures[f"{prefix}_{measure}"])


def test_every_side_holds_every_idle_connection(document: dict[str, Any]) -> None:
    """Each side's server held every connection opened to it, one socket each (beside a
    few of its own, to Redis)."""
    figures = document["figures"]
    for side in bench.SIDES:
        assert figures[f"{side}.connections_opened"] == QUICK.connections
        assert figures[f"{side}.connections_held"] == QUICK.connections
        fds = figures[f"{side}.connections_server_fds"]
        assert QUICK.connections <= fds <= QUICK.connections + 20
        assert figures[f"{side}.connections_kib_each"] > 0


def test_the_peer_is_not_compared_with_itself(document: dict[str, Any]) -> None:
    """Ratios exist only for sides other than the peer, each over the peer's figure."""
    others = [side for side in bench.SIDES if side != bench.PEER]
    assert all(name.split("/")[0] in others for name in document["ratios"])
    assert bool(document["ratios"]) == bool(others)
