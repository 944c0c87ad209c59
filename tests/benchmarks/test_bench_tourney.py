"""bench_tourney --quick: the production profile brought up, loaded for seconds, torn down.

The quick run is made once for the module, in a subprocess (it raises its open-files
limit and sets the app's environment), writing its file to a temporary directory;
about half a minute, most of it bringing the stack up. Only counts and the file's
shape are checked, never a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_tourney as bench

pytestmark = [pytest.mark.slow]

QUICK = bench.arguments(["--quick"])
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("results")
    argv = [sys.executable, "-m", "benchmarks.bench_tourney", "--quick"]
    done = subprocess.run(
        [*argv, "--results-dir", str(directory)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((directory / "bench_tourney.json").read_text())


def test_file_has_the_shared_shape(document: dict[str, Any]) -> None:
    assert {"name", "machine", "when", "quick", "figures", "ratios", "targets"} <= set(document)
    assert document["name"] == "bench_tourney"
    assert document["quick"] is True
    assert document["targets"] == {k: t.as_json() for k, t in bench.TARGETS.items()}
    assert document["settings"]["TENFOLD_TOURNEY__API_LIMIT"] == "1000000/minute"


def test_the_mixed_load_has_every_class_and_no_error(document: dict[str, Any]) -> None:
    """Each class was served, none failed, and the leaderboard reads went through the cache."""
    figures = document["figures"]
    for name in ("leaderboard", "reads", "writes"):
        assert figures[f"mixed.{name}_requests"] > 0
        assert figures[f"mixed.{name}_p95_ms"] is not None
    assert figures["mixed.errors"] == 0
    assert figures["mixed.requests"] == sum(
        figures[f"mixed.{name}_requests"] for name in ("leaderboard", "reads", "writes")
    )
    assert figures["mixed.leaderboard_hit_ratio"] is not None
    assert 0 < figures["mixed.leaderboard_hit_ratio"] <= 1


def test_the_writes_complete_matches(document: dict[str, Any]) -> None:
    """The quick run completes matches at once (``--complete-after 0``): every write
    completes a live match (the leaderboard changes) or starts the next one."""
    figures = document["figures"]
    assert QUICK.complete_after == 0
    assert figures["mixed.writes_completions"] > 0
    assert (
        figures["mixed.writes_completions"] + figures["mixed.writes_starts"]
        == figures["mixed.writes_requests"]
    )


def test_every_viewer_receives_every_write_of_its_tournament(document: dict[str, Any]) -> None:
    figures = document["figures"]
    assert figures["realtime.viewers_opened"] == QUICK.viewers
    assert figures["realtime.pushes_expected"] > 0
    assert figures["realtime.pushes_received"] == figures["realtime.pushes_expected"]
    assert figures["realtime.lost"] == 0


def test_the_idle_connections_are_held_and_receive_pushes(document: dict[str, Any]) -> None:
    figures = document["figures"]
    assert figures["connections.opened"] == QUICK.connections
    assert figures["connections.held"] == QUICK.connections
    assert figures["connections.with_pushes"] > 0
