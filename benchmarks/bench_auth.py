"""Auth: tenfold.auth's access tokens against PyJWT called bare, same key, same token, same run.

Sections (``SECTIONS``: each a function of the ``Bench`` returning the
figures and ratios it measured, so another can be added beside them):

1. **verify**: the time of one ``AccessTokens.verify(token)`` (header checks,
   signature, claims, the ``Principal`` built) against one bare
   ``jwt.decode(token, public_key, algorithms=[alg], audience=..., issuer=...)``
   with the same public key object and the same token, for EdDSA and ES256.
   Timeit-style: ``--number`` calls per timing, ``--rounds`` x ``--repeat``
   timings per side, the sides taking turns (which goes first swaps every
   turn), the best timing of each side kept. Target (reported, never enforced):
   ours <= 1.2x PyJWT's time, i.e. what tenfold adds on top of PyJWT stays
   under a fifth of a bare verification.

No server is needed: everything runs in this process.

    python -m benchmarks bench_auth [--quick]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt

if not __package__:  # run as a file, not with -m: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import Results, Target, record
from tenfold import Principal
from tenfold.auth._keys import KeySet
from tenfold.auth._tokens import AccessTokens

PEER = "pyjwt"
ALGORITHMS = ("EdDSA", "ES256")
ISSUER = "https://bench.tenfold.test"
AUDIENCE = "bench-api"
#: Reported after each run, never enforced.
TARGETS = {f"tenfold/{PEER}.verify_us.{alg}": Target.at_most(1.2) for alg in ALGORITHMS}
SectionResult = dict[str, dict[str, float]]


@dataclass(slots=True)
class Bench:
    """What every section works with: the options."""

    args: argparse.Namespace


# -- 1. verify ---------------------------------------------------------------------------------


def verify(bench: Bench) -> SectionResult:
    """Microseconds per verification, ours and bare PyJWT's, per algorithm; best of the rounds."""
    args = bench.args
    figures: dict[str, float] = {}
    ratios: dict[str, float] = {}
    print(f"\n{'verify (us/call)':<18}{'tenfold':>10}{PEER:>10}{'ratio':>8}")
    for algorithm in ALGORITHMS:
        ours, peer = _sides(algorithm)
        best = {"tenfold": float("inf"), PEER: float("inf")}
        sides = (("tenfold", ours), (PEER, peer))
        # One timing of each side in turn, so that both sample the same moments of the
        # machine's other load (this figure is the minimum, which load only ever raises).
        for turn in range(args.rounds * args.repeat):
            for side, call in sides if turn % 2 == 0 else sides[::-1]:
                best[side] = min(best[side], _per_call_us(call, args.number))
        ratio = best["tenfold"] / best[PEER]
        figures[f"tenfold.verify_us.{algorithm}"] = best["tenfold"]
        figures[f"{PEER}.verify_us.{algorithm}"] = best[PEER]
        ratios[f"tenfold/{PEER}.verify_us.{algorithm}"] = ratio
        print(f"{algorithm:<18}{best['tenfold']:>10.1f}{best[PEER]:>10.1f}{ratio:>7.2f}x")
    print(
        "  (tenfold: AccessTokens.verify, header checks and the Principal included; "
        f"{PEER}: jwt.decode with the same key object, audience and issuer)"
    )
    return {"figures": figures, "ratios": ratios}


def _sides(algorithm: str) -> tuple[Callable[[], object], Callable[[], object]]:
    """Verifying one token: ours, and PyJWT's with the same public key object."""
    keys = KeySet.generate(algorithm)
    tokens = AccessTokens(keys, issuer=ISSUER, audience=AUDIENCE, algorithm=algorithm)
    token = tokens.issue(Principal("user-1", roles={"staff"}, scopes={"read", "write"}))
    ours = functools.partial(tokens.verify, token)
    peer = functools.partial(
        jwt.decode,
        token,
        keys.active.public_key,
        algorithms=[algorithm],
        audience=AUDIENCE,
        issuer=ISSUER,
    )
    # Both sides must accept the token, or the timing would be of a refusal.
    if ours().id != "user-1" or peer()["sub"] != "user-1":
        raise RuntimeError(f"{algorithm}: a side refused the token")
    return ours, peer


def _per_call_us(call: Callable[[], object], number: int) -> float:
    """One timing of ``number`` calls, per call, in microseconds."""
    return timeit.timeit(call, number=number) / number * 1e6


SECTIONS: tuple[Callable[[Bench], SectionResult], ...] = (verify,)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per timing (2000)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per round, best kept (5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, sides alternating (3)")
    parser.add_argument("--quick", action="store_true", help="1 round, short runs: a smoke test")
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.number, args.repeat, args.rounds = 50, 2, 1
    return args


def run(args: argparse.Namespace) -> Results:
    """Run every section; print; write the results file."""
    results = Results(Path(__file__).stem, quick=args.quick, targets=dict(TARGETS))
    # Other work on the machine moves every figure: the load it started under is kept.
    results.figures["loadavg_1min_at_start"] = os.getloadavg()[0]
    print(
        f"{args.rounds} round(s) of the best of {args.repeat} x {args.number} calls; "
        f"load average {results.figures['loadavg_1min_at_start']:.2f}",
        flush=True,
    )
    bench = Bench(args)
    for section in SECTIONS:
        measured = section(bench)
        results.figures.update(measured["figures"])
        results.ratios.update(measured["ratios"])
    if args.results_dir is None:
        record(results)
    else:
        record(results, directory=args.results_dir)
    return results


def main(argv: list[str] | None = None) -> int:
    run(arguments(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
