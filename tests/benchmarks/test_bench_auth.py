"""bench_auth --quick: the file it writes, and both sides of every section measured.

The quick run takes well under a second and needs no server. Only the file's
shape and that each ratio is the two figures' quotient are checked, never a time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_auth as bench


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON a quick run writes into a temporary results directory."""
    directory: Path = tmp_path_factory.mktemp("results")
    assert bench.main(["--quick", "--results-dir", str(directory)]) == 0
    return json.loads((directory / "bench_auth.json").read_text())


def test_file_has_the_shared_shape(document: dict[str, Any]) -> None:
    """The file has the shared shape, marked quick, with the targets of the module."""
    assert set(document) == {"name", "machine", "when", "quick", "figures", "ratios", "targets"}
    assert document["name"] == "bench_auth"
    assert document["quick"] is True
    assert document["targets"] == {k: t.as_json() for k, t in bench.TARGETS.items()}


@pytest.mark.parametrize("algorithm", bench.ALGORITHMS)
def test_verify_is_measured_on_both_sides(document: dict[str, Any], algorithm: str) -> None:
    """Ours and PyJWT's verification times exist, are positive, and their ratio is recorded."""
    ours = document["figures"][f"tenfold.verify_us.{algorithm}"]
    peer = document["figures"][f"{bench.PEER}.verify_us.{algorithm}"]
    assert math.isfinite(ours)
    assert ours > 0
    assert math.isfinite(peer)
    assert peer > 0
    ratio = document["ratios"][f"tenfold/{bench.PEER}.verify_us.{algorithm}"]
    assert ratio == pytest.approx(ours / peer)
