"""The Generic Cell Rate Algorithm, as a pure function of (stored TAT, now, rule, cost).

GCRA keeps one number per key: the *theoretical arrival time* (TAT), when the
key would be fully rested again. With emission interval ``T = period / limit``
and tolerance ``tau = T * burst``, a request costing ``c`` is admitted when
``max(TAT, now) + c*T - now <= tau``; admitting it stores that sum as the new
TAT. Everything else (remaining, retry-after, reset) follows from the same
numbers, so backends only store and compare TATs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tenfold.ratelimit._rule import Rule

__all__ = ["Decision", "decide", "decide_all", "outcome"]

# Float sums of T drift by a few ulps; a millionth of an interval absorbs that without
# changing any decision a client could notice. The Lua script uses the same slack.
SLACK = 1e-6


@dataclass(frozen=True, slots=True)
class Decision:
    """One rule's verdict on one request. Times are seconds from the decision."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float


def decide(
    tat: float | None, now: float, rule: Rule, cost: int = 1
) -> tuple[bool, float, int, float, float]:
    """``(allowed, new_tat, remaining, retry_after, reset_after)`` for one request.

    ``tat`` is the stored TAT (``None`` for an unknown key); ``new_tat`` is what to
    store (the old TAT when refused).
    """
    check_cost(rule, cost)
    base = _base(tat, now)
    return outcome(base, now, rule, cost, admits(base, now, rule, cost))


def admits(base: float, now: float, rule: Rule, cost: int) -> bool:
    """Whether a request costing ``cost`` fits (``base`` is ``max(TAT, now)``)."""
    interval = rule.rate.emission_interval
    return base + cost * interval - now <= interval * (rule.capacity + SLACK)


def decide_all(
    tats: Sequence[float | None],
    now: float,
    rules: Sequence[Rule],
    cost: int = 1,
    verdicts: Sequence[bool] | None = None,
) -> list[tuple[bool, float, int, float, float]]:
    """All-or-nothing over several rules: each rule's numbers, counted only if all admit.

    ``verdicts`` are the rules' admissions when a store (Redis) already decided them.
    When any refuses, the admitting rules report ``allowed`` with nothing spent.
    """
    bases = [_base(tat, now) for tat in tats]
    if verdicts is None:
        verdicts = [admits(b, now, r, cost) for b, r in zip(bases, rules, strict=True)]
    spent = cost if all(verdicts) else 0
    return [
        outcome(base, now, rule, spent if ok else cost, ok)
        for base, rule, ok in zip(bases, rules, verdicts, strict=True)
    ]


def _base(tat: float | None, now: float) -> float:
    return now if tat is None or tat < now else tat


def outcome(
    base: float, now: float, rule: Rule, cost: int, allowed: bool
) -> tuple[bool, float, int, float, float]:
    """The numbers of a verdict already reached (``base`` is ``max(TAT, now)``)."""
    interval = rule.rate.emission_interval
    tolerance = interval * rule.capacity
    new_tat = base + cost * interval if allowed else base
    remaining = max(0, math.floor((now + tolerance - new_tat) / interval + SLACK))
    retry_after = 0.0 if allowed else max(0.0, base + cost * interval - tolerance - now)
    return allowed, new_tat, remaining, retry_after, max(0.0, new_tat - now)


def check_cost(rule: Rule, cost: int) -> None:
    if cost < 1:
        raise ValueError(f"cost must be at least 1, got {cost}")
    if cost > rule.capacity:
        raise ValueError(f"cost {cost} exceeds the burst of {rule!r}: it could never be admitted")


def to_decision(numbers: tuple[bool, float, int, float, float], rule: Rule) -> Decision:
    allowed, _, remaining, retry_after, reset_after = numbers
    return Decision(allowed, rule.limit, remaining, retry_after, reset_after)
