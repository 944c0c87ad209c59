"""``MemoryBackend``: GCRA state in a dict, for the embedded profile and tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tenfold.ratelimit._backend import check_request
from tenfold.ratelimit._gcra import Decision, decide_all, to_decision
from tenfold.ratelimit._rule import Rule

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """A ``LimiterBackend`` in this process; ``clock`` (seconds, monotonic) is injectable.

    Decisions never await, so each is atomic within the event loop. Rested keys
    (TAT in the past) are dropped every ``sweep_every`` hits, which bounds memory
    by the keys active within one period.
    """

    name = "memory"

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, sweep_every: int = 4096
    ) -> None:
        self._clock = clock
        self._tats: dict[tuple[str, str], float] = {}
        self._sweep_every = sweep_every
        self._hits = 0

    def __repr__(self) -> str:
        return f"<MemoryBackend {len(self._tats)} keys>"

    async def hit(self, key: str, rule: Rule, cost: int = 1) -> Decision:
        return (await self.hit_many([(key, rule)], cost))[0]

    async def hit_many(
        self, key_rules: Sequence[tuple[str, Rule]], cost: int = 1
    ) -> list[Decision]:
        rules = [rule for _, rule in key_rules]
        check_request(key_rules, cost)
        now = self._clock()
        slots = [(key, rule.ident) for key, rule in key_rules]
        results = decide_all([self._tats.get(slot) for slot in slots], now, rules, cost)
        if all(allowed for allowed, *_ in results):
            for slot, (_, new_tat, *_) in zip(slots, results, strict=True):
                self._tats[slot] = new_tat
        self._maybe_sweep(now)
        return [to_decision(r, rule) for r, rule in zip(results, rules, strict=True)]

    def _maybe_sweep(self, now: float) -> None:
        self._hits += 1
        if self._hits % self._sweep_every == 0:
            self._tats = {slot: tat for slot, tat in self._tats.items() if tat > now}

    def reset(self) -> None:
        """Forget every key."""
        self._tats.clear()

    async def aclose(self) -> None:
        self._tats.clear()
