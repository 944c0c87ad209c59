"""The sliding-window log, and deciding a mix of GCRA and sliding-window rules together.

A sliding-window rule keeps the timestamps of the requests it admitted in the
last ``period`` seconds (one entry per token spent). A request costing ``c``
is admitted when ``count + c <= limit``, where ``count`` is the number of
entries newer than ``now - period``. This is exact: no span of ``period``
seconds ever holds more than ``limit`` admissions, whatever the timing. The
price is memory: up to ``limit`` entries per key, where GCRA keeps one number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tenfold.ratelimit._gcra import outcome
from tenfold.ratelimit._rule import Rule

__all__ = ["WindowState", "settle", "window_state"]

Numbers = tuple[bool, float, int, float, float]


@dataclass(frozen=True, slots=True)
class WindowState:
    """What a decision needs from a key's log (times in seconds, 0 when absent).

    ``count``: entries inside the window; ``needed``: the entry whose leaving
    makes room for this request (only when it does not fit); ``newest``: the
    latest entry.
    """

    count: int
    needed: float
    newest: float


def window_state(entries: Sequence[float], now: float, rule: Rule, cost: int) -> WindowState:
    """The state of a sorted log ``entries`` already trimmed to the window."""
    count = len(entries)
    over = count + cost - rule.rate.limit
    needed = entries[over - 1] if over > 0 else 0.0
    return WindowState(count, needed, entries[-1] if entries else 0.0)


def fits(state: WindowState, rule: Rule, cost: int) -> bool:
    return state.count + cost <= rule.rate.limit


def settle(
    states: Sequence[float | WindowState],
    now: float,
    rules: Sequence[Rule],
    cost: int,
    verdicts: Sequence[bool],
) -> list[Numbers]:
    """All-or-nothing numbers for mixed rules: GCRA ones get ``max(TAT, now)``, windows a state.

    When any rule refuses, nothing is spent and the admitting ones keep their
    ``remaining``; this is ``decide_all`` extended to sliding windows.
    """
    spent = cost if all(verdicts) else 0
    results: list[Numbers] = []
    for state, rule, ok in zip(states, rules, verdicts, strict=True):
        if isinstance(state, WindowState):
            results.append(_window_outcome(state, now, rule, cost, ok, spent))
        else:
            results.append(outcome(state, now, rule, spent if ok else cost, ok))
    return results


def _window_outcome(
    state: WindowState, now: float, rule: Rule, cost: int, ok: bool, spent: int
) -> Numbers:
    period = rule.rate.period
    remaining = max(0, rule.rate.limit - state.count - spent)
    retry_after = 0.0 if ok else max(0.0, state.needed + period - now)
    # Fully rested when the newest entry leaves: a full period after a spending request.
    newest = now if spent else state.newest
    reset_after = max(0.0, newest + period - now) if spent or state.count else 0.0
    return ok, now, remaining, retry_after, reset_after
