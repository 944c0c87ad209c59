"""``MemoryBackend``: GCRA state in a dict, for the embedded profile and tests."""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Sequence

from tenfold.ratelimit._backend import check_request
from tenfold.ratelimit._gcra import Decision, admits, check_cost, outcome, to_decision
from tenfold.ratelimit._rule import Rule
from tenfold.ratelimit._window import WindowState, fits, settle, window_state

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """A ``LimiterBackend`` in this process; ``clock`` (seconds, monotonic) is injectable.

    Decisions never await, so each is atomic within the event loop. Rested keys
    (TAT in the past, or an empty sliding window) are dropped every
    ``sweep_every`` hits, which bounds memory by the keys active within one period.
    """

    name = "memory"

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, sweep_every: int = 4096
    ) -> None:
        self._clock = clock
        self._tats: dict[tuple[str, str], float] = {}
        self._logs: dict[tuple[str, str], tuple[float, list[float]]] = {}  # (period, entries)
        self._sweep_every = sweep_every
        self._hits = 0

    def __repr__(self) -> str:
        return f"<MemoryBackend {len(self._tats)} keys>"

    async def hit(self, key: str, rule: Rule, cost: int = 1) -> Decision:
        return (await self.hit_many([(key, rule)], cost))[0]

    async def hit_many(
        self, key_rules: Sequence[tuple[str, Rule]], cost: int = 1
    ) -> list[Decision]:
        if len(key_rules) == 1 and not key_rules[0][1].sliding:
            return [self._hit_gcra(*key_rules[0], cost)]
        rules = [rule for _, rule in key_rules]
        check_request(key_rules, cost)
        now = self._clock()
        slots = [(key, rule.ident) for key, rule in key_rules]
        states: list[float | WindowState] = []
        verdicts: list[bool] = []
        for slot, rule in zip(slots, rules, strict=True):
            if rule.sliding:
                state = window_state(self._window(slot, now, rule), now, rule, cost)
                verdicts.append(fits(state, rule, cost))
            else:
                state = max(self._tats.get(slot, now), now)
                verdicts.append(admits(state, now, rule, cost))
            states.append(state)
        results = settle(states, now, rules, cost, verdicts)
        if all(verdicts):
            for slot, rule, (_, new_tat, *_) in zip(slots, rules, results, strict=True):
                if rule.sliding:
                    self._logs[slot][1].extend([now] * cost)
                else:
                    self._tats[slot] = new_tat
        self._maybe_sweep(now)
        return [to_decision(r, rule) for r, rule in zip(results, rules, strict=True)]

    def _hit_gcra(self, key: str, rule: Rule, cost: int) -> Decision:
        """One GCRA rule: the common case, without the all-or-nothing bookkeeping."""
        check_cost(rule, cost)
        now = self._clock()
        slot = (key, rule.ident)
        tat = self._tats.get(slot, now)
        base = tat if tat > now else now
        numbers = outcome(base, now, rule, cost, admits(base, now, rule, cost))
        if numbers[0]:
            self._tats[slot] = numbers[1]
        self._maybe_sweep(now)
        return to_decision(numbers, rule)

    def _window(self, slot: tuple[str, str], now: float, rule: Rule) -> list[float]:
        """``slot``'s log with the entries at or before ``now - period`` dropped."""
        _, entries = self._logs.setdefault(slot, (rule.rate.period, []))
        del entries[: bisect_right(entries, now - rule.rate.period)]
        return entries

    def _maybe_sweep(self, now: float) -> None:
        self._hits += 1
        if self._hits % self._sweep_every == 0:
            self._tats = {slot: tat for slot, tat in self._tats.items() if tat > now}
            self._logs = {
                slot: (period, entries)
                for slot, (period, entries) in self._logs.items()
                if entries and entries[-1] > now - period
            }

    def reset(self) -> None:
        """Forget every key."""
        self._tats.clear()
        self._logs.clear()

    async def aclose(self) -> None:
        self.reset()
