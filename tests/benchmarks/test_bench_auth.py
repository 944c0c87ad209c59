"""bench_auth --quick: the file it writes, and both sides of every section measured.

The quick run is made once for the module (a few seconds: section 2 starts two
uvicorn servers and a redis-server and loads each for one second with wrk).
Only the file's shape, that every request of the load was answered 200 and that
each ratio is the two figures' quotient are checked, never a time.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_auth as bench
from benchmarks._apps_auth import APP_NAME, ROLE
from tenfold.auth import AccessTokens, AuthSettings, KeySet

pytestmark = [pytest.mark.slow]

HAS_WRK = shutil.which("wrk") is not None
needs_wrk = pytest.mark.skipif(not HAS_WRK, reason="section 2 loads its servers with wrk")
QUICK = bench.arguments(["--quick"])
STACK_SIDES = ("tenfold", bench.STACK_PEER)


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON a quick run (every section, or only section 1 without wrk) writes."""
    directory: Path = tmp_path_factory.mktemp("results")
    argv = ["--quick", "--results-dir", str(directory)]
    if not HAS_WRK:
        argv += ["--sections", "verify"]
    assert bench.main(argv) == 0
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


@needs_wrk
@pytest.mark.parametrize("side", STACK_SIDES)
def test_full_stack_side_served_every_request(document: dict[str, Any], side: str) -> None:
    """Each side answered the whole load with 200s (every token accepted), with latencies."""
    figures = document["figures"]
    assert figures[f"{side}.full_stack.errors"] == 0
    assert figures[f"{side}.full_stack.req_per_s"] > 0
    for measure in ("p50_ms", "p99_ms", "cpu_us_per_req"):
        value = figures[f"{side}.full_stack.{measure}"]
        assert value is not None
        assert math.isfinite(value)
        assert value > 0
    assert figures[f"{side}.full_stack.p50_ms"] <= figures[f"{side}.full_stack.p99_ms"]
    assert figures["full_stack.users"] == QUICK.users


@needs_wrk
def test_full_stack_ratios_are_the_figures_quotients(document: dict[str, Any]) -> None:
    """With one round, the ratios are ours over the peer's req/s, and the peer's CPU per
    request over ours."""
    figures, ratios = document["figures"], document["ratios"]
    peer = bench.STACK_PEER
    by_rps = ratios[f"tenfold/{peer}.full_stack.req_per_s"]
    assert by_rps == pytest.approx(
        figures["tenfold.full_stack.req_per_s"] / figures[f"{peer}.full_stack.req_per_s"]
    )
    by_cpu = ratios[f"tenfold/{peer}.full_stack.req_per_cpu_s"]
    assert by_cpu == pytest.approx(
        figures[f"{peer}.full_stack.cpu_us_per_req"] / figures["tenfold.full_stack.cpu_us_per_req"]
    )


def test_quick_run_is_bounded() -> None:
    """--quick loads each server for one round of one second, after a one-second warm-up."""
    assert (QUICK.stack_rounds, QUICK.duration, QUICK.warmup) == (1, 1.0, 1.0)
    assert QUICK.sections == [section.__name__ for section in bench.SECTIONS]


def test_tokens_are_those_of_the_apps_key_file(tmp_path: Path) -> None:
    """The tokens the load sends verify with the key file the app reads, as its own
    AccessTokens (issuer and audience the app name) would verify them; one per user."""
    tokens = bench._stack_tokens(tmp_path, 3)
    keys = KeySet.from_settings(AuthSettings(keys_file=tmp_path / "keys.json"))
    verifier = AccessTokens(keys, issuer=APP_NAME, audience=APP_NAME, algorithm="EdDSA")
    assert len(set(tokens.values())) == 3
    for user, token in tokens.items():
        principal = verifier.verify(token)
        assert principal.id == user
        assert principal.roles == {ROLE}
    assert (tmp_path / "public.pem").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
