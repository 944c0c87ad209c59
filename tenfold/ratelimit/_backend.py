"""The port every limiter store implements: ``LimiterBackend``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tenfold.ratelimit._gcra import Decision, check_cost
from tenfold.ratelimit._rule import Rule

__all__ = ["LimiterBackend", "check_request"]


@runtime_checkable
class LimiterBackend(Protocol):
    """Where GCRA state lives. Each call is one atomic decision.

    ``hit_many`` is all-or-nothing: the request counts against every
    ``(key, rule)`` only if all of them admit it. Either way it returns one
    ``Decision`` per pair, in order; when any refuses, nothing was counted and
    the admitting ones show ``allowed=True`` with their unchanged ``remaining``,
    so the request as a whole was admitted iff ``all(d.allowed for d in ...)``.
    """

    name: str

    async def hit(self, key: str, rule: Rule, cost: int = 1) -> Decision: ...

    async def hit_many(
        self, key_rules: Sequence[tuple[str, Rule]], cost: int = 1
    ) -> list[Decision]: ...

    async def aclose(self) -> None: ...


def check_request(key_rules: Sequence[tuple[str, Rule]], cost: int) -> None:
    """Raise ValueError for a request no backend could decide sensibly."""
    if not key_rules:
        raise ValueError("a decision needs at least one (key, rule) pair")
    if len({(key, rule.ident) for key, rule in key_rules}) < len(key_rules):
        raise ValueError(f"the same (key, rule) appears twice in {list(key_rules)!r}")
    for _, rule in key_rules:
        check_cost(rule, cost)
