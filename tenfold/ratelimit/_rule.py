"""Rules as values: ``Rate`` (N per period) and ``Rule`` (a rate with a burst).

``Rate.parse("100/minute")`` accepts ``N/unit`` and ``N/<k><unit>`` (``"10/5s"``)
with units second, minute, hour, day (and their short forms s, m/min, h, d).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["ALGORITHMS", "Rate", "Rule"]

#: The decision algorithms a ``Rule`` can use.
ALGORITHMS = ("gcra", "sliding_window")

_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86_400.0, "day": 86_400.0, "days": 86_400.0,
}  # fmt: skip
_NAMES = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86_400.0: "day"}
_SYNTAX = re.compile(r"\s*(\d+)\s*(?:/|per)\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``period`` seconds."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"a rate's limit must be at least 1, got {self.limit}")
        if self.period <= 0:
            raise ValueError(f"a rate's period must be positive, got {self.period}")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """The rate ``text`` describes, e.g. ``"100/minute"``, ``"1000 per day"``, ``"10/5s"``."""
        match = _SYNTAX.fullmatch(text)
        unit = match and _UNITS.get(match.group(3).lower())
        if match is None or unit is None:
            raise ValueError(
                f"cannot parse rate {text!r}: expected 'N/unit' such as '100/minute' "
                f"(units: second, minute, hour, day)"
            )
        return cls(int(match.group(1)), float(match.group(2) or 1) * unit)

    @property
    def emission_interval(self) -> float:
        """Seconds between requests at the sustained rate."""
        return self.period / self.limit

    def __str__(self) -> str:
        name = _NAMES.get(self.period)
        return f"{self.limit}/{name}" if name else f"{self.limit}/{self.period:g}s"

    def __repr__(self) -> str:
        return f"Rate({str(self)!r})"


@dataclass(frozen=True, slots=True)
class Rule:
    """A rate plus ``burst``: how many requests may arrive at once (default: the rate's limit).

    With ``algorithm="gcra"`` (the default) a fresh key admits ``burst`` requests
    at once, then one per emission interval. With ``"sliding_window"`` (a sliding
    log) a key admits at most ``limit`` requests in any span of ``period``
    seconds, exactly; it has no separate burst.
    """

    rate: Rate
    burst: int | None = None
    algorithm: str = "gcra"
    #: A short name unique to the rule's behaviour; part of storage keys (computed once:
    #: every decision looks it up).
    ident: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.rate, str):
            object.__setattr__(self, "rate", Rate.parse(self.rate))
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"a rule's burst must be at least 1, got {self.burst}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; use one of {ALGORITHMS}")
        if self.sliding and self.burst not in (None, self.rate.limit):
            raise ValueError("a sliding-window rule has no burst: it admits `limit` per period")
        tail = "sw" if self.sliding else f"b{self.capacity}"
        object.__setattr__(self, "ident", f"{self.rate.limit}/{self.rate.period:g}{tail}")

    @property
    def sliding(self) -> bool:
        """Whether the rule is decided by the sliding-window log."""
        return self.algorithm == "sliding_window"

    @property
    def capacity(self) -> int:
        """The burst in effect: requests a rested key admits at once."""
        return self.rate.limit if self.burst is None else self.burst

    @property
    def limit(self) -> int:
        """The number a client is told (``RateLimit-Limit``): the rate's N."""
        return self.rate.limit

    def __repr__(self) -> str:
        burst = "" if self.burst is None else f", burst={self.burst}"
        algorithm = f", algorithm={self.algorithm!r}" if self.sliding else ""
        return f"Rule({str(self.rate)!r}{burst}{algorithm})"
