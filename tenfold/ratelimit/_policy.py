"""Policies: a key function plus the rules it must pass, and where they apply.

A ``Policy`` is attached to the whole app, to path prefixes or route
templates (``RateLimitMiddleware(default=, prefixes=, routes=)``), or to one
endpoint with the ``@rate_limit(policy)`` marker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenfold.ratelimit._gcra import check_cost
from tenfold.ratelimit._keys import KeyFunc, by_ip
from tenfold.ratelimit._rule import Rule

__all__ = ["Policy", "policies_of", "rate_limit"]

_MARKER = "__tenfold_rate_limits__"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Policy:
    """Rules counted against ``key(scope)``, all-or-nothing, each request spending ``cost``.

    ``fail_open`` decides what happens when the backend is unavailable: serve
    the request (logged and counted) or answer 503. ``None`` (the default)
    decides by route kind: open for reads (GET, HEAD, OPTIONS), closed for
    everything else, and always closed when ``auth`` marks the policy as
    guarding authentication (login, tokens, password resets), where an outage
    must not open the door to guessing.
    """

    name: str
    rules: Sequence[Rule | str]
    key: KeyFunc = field(default_factory=by_ip)
    cost: int = 1
    fail_open: bool | None = None
    auth: bool = False

    def __post_init__(self) -> None:
        rules = tuple(Rule(r) if isinstance(r, str) else r for r in self.rules)  # type: ignore[arg-type]
        if not rules:
            raise ValueError(f"policy {self.name!r} needs at least one rule")
        if len({r.ident for r in rules}) < len(rules):
            raise ValueError(f"policy {self.name!r} lists the same rule twice")
        for rule in rules:
            check_cost(rule, self.cost)
        object.__setattr__(self, "rules", rules)

    def fails_open(self, method: str) -> bool:
        """Whether a request with ``method`` is served when the backend is unavailable."""
        if self.fail_open is not None:
            return self.fail_open
        return not self.auth and method in _READS

    def key_rules(self, key: str) -> list[tuple[str, Rule]]:
        """The ``(key, rule)`` pairs of one decision for ``key``."""
        rules = self.rules
        if len(rules) == 1:  # the common case, per request: no comprehension frame
            return [(key, rules[0])]  # type: ignore[list-item]
        return [(key, rule) for rule in rules]  # type: ignore[misc]


def rate_limit(*policies: Policy) -> Callable[[_F], _F]:
    """Mark an endpoint with ``policies``; ``RateLimitMiddleware`` applies them."""

    def mark(endpoint: _F) -> _F:
        existing: tuple[Policy, ...] = getattr(endpoint, _MARKER, ())
        setattr(endpoint, _MARKER, existing + policies)
        return endpoint

    return mark


def policies_of(endpoint: object) -> tuple[Policy, ...]:
    """The policies ``@rate_limit`` put on ``endpoint``."""
    return getattr(endpoint, _MARKER, ())
