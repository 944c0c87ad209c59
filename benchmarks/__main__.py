"""Run every benchmark: ``python -m benchmarks [--quick] [name ...]``.

Each ``bench_*.py`` module has a ``main(argv)``; each prints our figure beside
the peer's measured in the same run, with the ratio, and writes the same
numbers to ``benchmarks/results/<name>.json`` (see ``benchmarks/_results.py``).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from benchmarks._results import machine


def main() -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("only", nargs="*", help=f"benchmarks to run (of: {', '.join(names)})")
    args = parser.parse_args()
    unknown = set(args.only) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    print(f"machine: {machine()}")
    for name in args.only or names:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        module.main(["--quick"] if args.quick else [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
