"""benchmarks._results: the JSON each benchmark writes, written atomically, and target verdicts."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from benchmarks._results import Results, Target, machine, record, write

WHEN = datetime(2026, 11, 22, 9, 30, 5, tzinfo=UTC)


def full_stack() -> Results:
    return Results(
        "bench_full_stack",
        quick=True,
        figures={"fastapi.req_per_s": 11771.0, "tenfold-lease.p99_ms": 3.76},
        ratios={"tenfold-lease/fastapi": 1.43, "tenfold-lease/assembled": 9.5},
        targets={
            "tenfold-lease/fastapi": Target.at_least(1.3),
            "tenfold-lease/assembled": Target.at_least(10),
        },
    )


def test_file_has_the_documented_shape(tmp_path: Path) -> None:
    """<name>.json holds exactly name, machine, when, quick, figures, ratios and targets."""
    path = write(full_stack(), directory=tmp_path, when=WHEN, machine_name="Test CPU, 2 cores")
    assert path == tmp_path / "bench_full_stack.json"
    assert json.loads(path.read_text()) == {
        "name": "bench_full_stack",
        "machine": "Test CPU, 2 cores",
        "when": "2026-11-22T09:30:05Z",
        "quick": True,
        "figures": {"fastapi.req_per_s": 11771.0, "tenfold-lease.p99_ms": 3.76},
        "ratios": {"tenfold-lease/fastapi": 1.43, "tenfold-lease/assembled": 9.5},
        "targets": {"tenfold-lease/fastapi": {"min": 1.3}, "tenfold-lease/assembled": {"min": 10}},
    }


def test_settings_are_written_only_when_named(tmp_path: Path) -> None:
    """A file names the server settings its figures were measured under, and has no key without."""
    results = full_stack()
    results.settings = {"fsync": "on", "synchronous_commit": "on"}
    document = json.loads(write(results, directory=tmp_path, when=WHEN).read_text())
    assert document["settings"] == {"fsync": "on", "synchronous_commit": "on"}
    assert "settings" not in full_stack().as_json(machine="m", when=WHEN)


def test_when_is_written_in_utc() -> None:
    """A timestamp from another zone is converted to UTC, with a Z."""
    local = WHEN.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert Results("b").as_json(machine="m", when=local)["when"] == "2026-11-22T09:30:05Z"


def test_naive_time_is_refused() -> None:
    """A timestamp without a zone would be ambiguous, so it is refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        Results("b").as_json(machine="m", when=datetime(2026, 11, 22))


def test_unmeasured_figures_are_null(tmp_path: Path) -> None:
    """A NaN (e.g. no CPU time without /proc) becomes null, so the file stays valid JSON."""
    results = Results("b", figures={"x.cpu_us_per_req": math.nan}, ratios={"x/y": math.inf})
    text = write(results, directory=tmp_path, when=WHEN, machine_name="m").read_text()
    document = json.loads(text)
    assert document["figures"] == {"x.cpu_us_per_req": None}
    assert document["ratios"] == {"x/y": None}
    assert "NaN" not in text
    assert "Infinity" not in text


def test_defaults_fill_in_now_and_this_machine(tmp_path: Path) -> None:
    """Without an injected time and machine, the file says now (UTC) and this machine."""
    before = datetime.now(UTC).replace(microsecond=0)
    document = json.loads(write(Results("b"), directory=tmp_path).read_text())
    when = datetime.strptime(document["when"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= when <= datetime.now(UTC)
    assert document["machine"] == machine()


def test_machine_names_cores_python_and_os() -> None:
    """The machine line ends with the core count, the Python version and the OS."""
    import platform

    expected = f", {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    assert machine().endswith(expected)
    assert not machine().startswith(",")


def test_creates_the_results_folder(tmp_path: Path) -> None:
    """A missing results folder (and its parents) is created."""
    directory = tmp_path / "a" / "results"
    assert write(Results("b"), directory=directory, when=WHEN).parent == directory


def test_rewrite_replaces_the_file_by_rename(tmp_path: Path) -> None:
    """A second run swaps in a new file (a new inode) rather than rewriting the old in place."""
    first = write(Results("b", figures={"x": 1.0}), directory=tmp_path, when=WHEN)
    inode = first.stat().st_ino
    second = write(Results("b", figures={"x": 2.0}), directory=tmp_path, when=WHEN)
    assert second == first
    assert second.stat().st_ino != inode
    assert json.loads(second.read_text())["figures"] == {"x": 2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]
    assert oct(second.stat().st_mode & 0o777) == oct(0o644)


def test_failed_rename_leaves_no_temporary_file(tmp_path: Path) -> None:
    """If the rename fails, the error is raised and the temporary file is removed."""
    blocker = tmp_path / "b.json"
    blocker.mkdir()
    (blocker / "keep").write_text("x")
    with pytest.raises(OSError):
        write(Results("b"), directory=tmp_path, when=WHEN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]
    assert (blocker / "keep").read_text() == "x"


def test_unserialisable_value_leaves_the_previous_file(tmp_path: Path) -> None:
    """A value JSON cannot hold fails before the disk is touched: the last file survives."""
    path = write(Results("b", figures={"x": 1.0}), directory=tmp_path, when=WHEN)
    broken = Results("b", figures={"x": object()})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        write(broken, directory=tmp_path, when=WHEN)
    assert json.loads(path.read_text())["figures"] == {"x": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]


@pytest.mark.parametrize(
    ("target", "value", "met"),
    [
        (Target.at_least(1.3), 1.41, True),
        (Target.at_least(1.3), 1.3, True),
        (Target.at_least(1.3), 1.29, False),
        (Target.at_most(0.5), 0.151, True),
        (Target.at_most(0.5), 0.5, True),
        (Target.at_most(0.5), 0.51, False),
        (Target.at_least(1.3), math.nan, False),
        (Target.at_most(0.5), math.nan, False),
    ],
)
def test_target_bounds(target: Target, value: float, met: bool) -> None:
    """A min bound holds at or above it, a max bound at or below it, and NaN never holds."""
    assert target.met_by(value) is met


def test_target_json_and_text() -> None:
    """A target is written as {"min": x} or {"max": x} and printed as >= x or <= x."""
    assert Target.at_least(10).as_json() == {"min": 10}
    assert Target.at_most(0.5).as_json() == {"max": 0.5}
    assert str(Target.at_least(1.3)) == ">= 1.3"
    assert str(Target.at_most(0.5)) == "<= 0.5"


def test_target_refuses_an_unknown_bound() -> None:
    """A bound other than min or max is a mistake, caught when the target is made."""
    with pytest.raises(ValueError, match="'min' or 'max'"):
        Target("minimum", 1.0)  # type: ignore[arg-type]


def test_verdicts_say_met_missed_or_not_measured() -> None:
    """One line per target, on a ratio or an absolute figure, in the order they were given."""
    results = full_stack()
    results.figures["l1.LocalLRU.us_per_get"] = 0.151
    results.targets["l1.LocalLRU.us_per_get"] = Target.at_most(0.5)
    results.targets["tenfold-exact/fastapi"] = Target.at_least(1.0)
    results.ratios["tenfold-exact/fastapi"] = math.nan
    results.targets["zipf.warm.hit_ratio"] = Target.at_least(0.95)
    assert results.verdicts() == [
        "tenfold-lease/fastapi 1.43 (target >= 1.3): met",
        "tenfold-lease/assembled 9.5 (target >= 10): missed",
        "l1.LocalLRU.us_per_get 0.151 (target <= 0.5): met",
        "tenfold-exact/fastapi not measured (target >= 1)",
        "zipf.warm.hit_ratio not measured (target >= 0.95)",
    ]


def test_record_prints_verdicts_and_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """record prints each verdict, writes the file and says where, and never raises on a miss."""
    path = record(full_stack(), directory=tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "targets (a --quick run: too short to judge them by):",
        "tenfold-lease/fastapi 1.43 (target >= 1.3): met",
        "tenfold-lease/assembled 9.5 (target >= 10): missed",
        f"results written to {path}",
    ]
    assert json.loads(path.read_text())["name"] == "bench_full_stack"
