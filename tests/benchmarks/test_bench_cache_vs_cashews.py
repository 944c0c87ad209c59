"""bench_cache_vs_cashews --quick: the file it writes, and the counts each part must show.

The quick run is made once for the module (about 15 s: three peer processes, a
Redis it pauses, a TTL it waits out). Only counts and behaviour
are checked, never a time.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from benchmarks import bench_cache_vs_cashews as bench
from benchmarks._vs_cashews_checks import MIXED_LONG
from tenfold.testing import RedisServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    # cashews 7.6 closes its redis-py client with the deprecated close().
    pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning"),
]

LIBRARIES = ("tenfold", "cashews")
QUICK = bench.arguments(["--quick"])


@pytest.fixture(scope="module")
async def document(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory):
    """The JSON a quick run against the harness Redis writes."""
    directory = tmp_path_factory.mktemp("results")
    args = bench.arguments(["--quick", "--results-dir", str(directory)])
    await bench.run(args, redis_server.url, tmp_path_factory.mktemp("servers"))
    path = directory / "bench_cache_vs_cashews.json"
    return json.loads(path.read_text())


def _figure(document: dict[str, Any], name: str) -> float:
    value = document["figures"][name]
    assert value is not None, f"{name} was not measured"
    return value  # type: ignore[no-any-return]


def test_file_has_the_shared_shape(document: dict[str, Any]) -> None:
    """The file has the shape every benchmark writes, marked quick, with only finite numbers."""
    assert set(document) == {"name", "machine", "when", "quick", "figures", "ratios", "targets"}
    assert document["name"] == "bench_cache_vs_cashews"
    assert document["quick"] is True
    numbers = [*document["figures"].values(), *document["ratios"].values()]
    assert all(v is not None and math.isfinite(v) for v in numbers)
    assert document["targets"] == {k: t.as_json() for k, t in bench.TARGETS.items()}


def test_every_part_is_recorded_for_both_libraries(document: dict[str, Any]) -> None:
    """Each part's figures exist for tenfold and cashews, and each ratio is ours over theirs."""
    figures = document["figures"]
    for part in ("hot", "redis", "stampede", "tags", "race", "mixed-ttl", "outage"):
        for library in LIBRARIES:
            assert any(f.startswith(f"{part}.{library}") for f in figures), (part, library)
    assert set(document["ratios"]) == {
        "tenfold/cashews-client-side.hot.us_per_get",
        "tenfold/cashews-client-side-lock.hot.us_per_get",
        "tenfold/cashews.redis.1-task.us_per_get",
        "tenfold/cashews.redis.16-tasks.us_per_get",
        "tenfold-tagged/cashews-tagged.redis.1-task.us_per_get",
        "tenfold-tagged/cashews-tagged.redis.16-tasks.us_per_get",
        "tenfold/cashews-lock.stampede.3-processes.ms",
        "tenfold/cashews-lock.stampede.3-processes.redis_cmds",
        "tenfold/cashews.tags.invalidate_ms",
    }
    assert all(v > 0 for v in document["ratios"].values())


def test_hot_reads_stay_in_process_unless_cashews_locks(document: dict[str, Any]) -> None:
    """An L1 hit costs no Redis command on either library; cashews' lock=True costs two round
    trips (SET NX, then the unlock script) on every hit."""
    # Background health checks may land in the window: far below one per get.
    assert _figure(document, "hot.tenfold.redis_cmds_per_get") < 0.05
    assert _figure(document, "hot.cashews-client-side.redis_cmds_per_get") < 0.05
    assert _figure(document, "hot.cashews-client-side-lock.redis_cmds_per_get") >= 2


def test_stampede_loads_once_where_a_lock_spans_processes(document: dict[str, Any]) -> None:
    """tenfold loads a cold key once for every caller in 1 or 3 processes; cashews does with
    lock=True, and without it once per process."""
    for shape in ("1-process", "3-processes"):
        for label in ("tenfold", "cashews-lock"):
            assert _figure(document, f"stampede.{label}.{shape}.loader_calls") == 1
            assert _figure(document, f"stampede.{label}.{shape}.distinct_values") == 1
    assert _figure(document, "stampede.cashews.1-process.loader_calls") == 1
    assert 1 <= _figure(document, "stampede.cashews.3-processes.loader_calls") <= bench.PEERS


def test_tag_invalidation_reaches_the_other_process(document: dict[str, Any]) -> None:
    """After a tag is invalidated no process serves the old entries, except cashews' client-side
    cache on RESP3 (redis-py's default), whose other instances never hear of it."""
    for library in LIBRARIES:
        assert _figure(document, f"tags.{library}.own_stale") == 0
        assert _figure(document, f"tags.{library}.peer_still_stale") == 0
    assert _figure(document, "tags.cashews-resp3.peer_still_stale") == QUICK.tag_keys
    # One counter bump and its message, however many entries carry the tag.
    assert _figure(document, "tags.tenfold.invalidate_redis_cmds") < QUICK.tag_keys / 10


def test_racing_fills_and_mixed_ttls_leave_no_stale_entry_in_tenfold(
    document: dict[str, Any],
) -> None:
    """A fill that read before an invalidation, and a tag over mixed TTLs, leave stale entries
    in cashews (every trial) and none in tenfold."""
    assert _figure(document, "race.tenfold.stale_entries") == 0
    assert _figure(document, "race.cashews.stale_entries") == QUICK.race_trials
    assert _figure(document, "mixed-ttl.tenfold.stale_entries") == 0
    assert _figure(document, "mixed-ttl.cashews.stale_entries") == MIXED_LONG


def test_a_hung_redis_still_answers_every_call(document: dict[str, Any]) -> None:
    """With Redis paused every call returns, and each key is loaded once (its second read is
    served from L1) by both libraries."""
    for label in ("tenfold", "cashews", "cashews-100ms"):
        assert _figure(document, f"outage.{label}.loader_calls") == QUICK.outage_keys
