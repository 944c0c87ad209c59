"""What a benchmark leaves behind: ``benchmarks/results/<name>.json``, one file per benchmark.

A benchmark collects the numbers it printed in a ``Results``: its figures, the
ratios of ours over a peer's figure from the same run (named ``"<ours>/<peer>"``),
and the targets the docs hold those to. ``record`` then prints one line per
target saying whether it held, and writes the file::

    results = Results("bench_full_stack", quick=False, targets=TARGETS)
    results.figures["fastapi.req_per_s"] = 11771.0
    results.ratios["tenfold-lease/fastapi"] = 1.43
    record(results)

The file::

    {"name": "bench_full_stack", "machine": "<cpu>, 2 cores, Python 3.11.7, Linux",
     "when": "2026-11-22T10:00:00Z", "quick": false,
     "figures": {"fastapi.req_per_s": 11771.0, ...},
     "ratios": {"tenfold-lease/fastapi": 1.43, ...},
     "targets": {"tenfold-lease/fastapi": {"min": 1.3}, ...}}

A benchmark whose figures depend on how a server was set up names those
settings in ``results.settings`` (``{"fsync": "on", ...}``); the file then
has a ``"settings"`` object too.

A figure that was not measured (no CPU time without ``/proc``) is ``null``.
Targets are reported, never enforced: a benchmark measures, it does not fail.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = ["RESULTS_DIR", "Results", "Target", "machine", "record", "write"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on a ratio or figure: ``Target.at_least(1.3)`` or ``Target.at_most(0.5)``."""

    bound: Literal["min", "max"]
    value: float

    def __post_init__(self) -> None:
        if self.bound not in ("min", "max"):
            raise ValueError(f"a Target's bound is 'min' or 'max', not {self.bound!r}")

    @classmethod
    def at_least(cls, value: float) -> Target:
        return cls("min", value)

    @classmethod
    def at_most(cls, value: float) -> Target:
        return cls("max", value)

    def met_by(self, measured: float) -> bool:
        """Whether ``measured`` is within the bound (a NaN never is)."""
        return measured >= self.value if self.bound == "min" else measured <= self.value

    def as_json(self) -> dict[str, float]:
        return {self.bound: self.value}

    def __str__(self) -> str:
        return f"{'>=' if self.bound == 'min' else '<='} {self.value:g}"


@dataclass(slots=True)
class Results:
    """The numbers one benchmark run printed, by stable name, and the targets for some."""

    name: str
    quick: bool = False
    figures: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    #: Keyed by a ratio's name, or a figure's for a bound on an absolute figure.
    targets: dict[str, Target] = field(default_factory=dict)
    #: Server settings the figures were measured under (written when there are any).
    settings: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """The ratio or figure called ``name``, or None if this run did not measure it."""
        value = self.ratios.get(name, self.figures.get(name))
        return value if value is not None and math.isfinite(value) else None

    def verdicts(self) -> list[str]:
        """One line per target: the measured value, the bound, and whether it held."""
        lines = []
        for name, target in self.targets.items():
            value = self.value(name)
            if value is None:
                lines.append(f"{name} not measured (target {target})")
            else:
                verdict = "met" if target.met_by(value) else "missed"
                lines.append(f"{name} {_number(value)} (target {target}): {verdict}")
        return lines

    def as_json(self, *, machine: str, when: datetime) -> dict[str, Any]:
        """The file's content. ``when`` must be timezone-aware; it is written in UTC."""
        if when.tzinfo is None:
            raise ValueError("when must be timezone-aware, e.g. datetime.now(UTC)")
        document: dict[str, Any] = {
            "name": self.name,
            "machine": machine,
            "when": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "quick": self.quick,
            "figures": {k: _finite(v) for k, v in self.figures.items()},
            "ratios": {k: _finite(v) for k, v in self.ratios.items()},
            "targets": {k: t.as_json() for k, t in self.targets.items()},
        }
        if self.settings:
            document["settings"] = dict(self.settings)
        return document


def machine() -> str:
    """``"<cpu model>, <n> cores, Python x.y.z, <OS>"``: what the figures were measured on."""
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def write(
    results: Results,
    *,
    directory: Path = RESULTS_DIR,
    when: datetime | None = None,
    machine_name: str | None = None,
) -> Path:
    """Write ``<directory>/<name>.json`` atomically; return its path.

    ``when`` defaults to now and ``machine_name`` to ``machine()``.
    """
    document = results.as_json(
        machine=machine_name if machine_name is not None else machine(),
        when=when if when is not None else datetime.now(UTC),
    )
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{results.name}.json"
    _replace(path, text)
    return path


def record(results: Results, *, directory: Path | None = None) -> Path:
    """Print whether each target held, write the results file and say where
    (``directory``, or ``RESULTS_DIR`` when None: a ``--results-dir`` left unset)."""
    if results.quick and results.targets:
        print("targets (a --quick run: too short to judge them by):")
    for line in results.verdicts():
        print(line)
    path = write(results, directory=directory if directory is not None else RESULTS_DIR)
    print(f"results written to {_shown(path)}", flush=True)
    return path


def _replace(path: Path, text: str) -> None:
    # A reader (or a run interrupted half-way) sees the old file or the new one,
    # never a truncated mix: write beside it, then rename over it.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o644)  # mkstemp makes it 0600; results are for reading
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
