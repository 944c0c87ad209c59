"""``Backoff``: how long to wait before trying again, as one value.

    Backoff(base=0.1, multiplier=2.0, max=10.0, jitter="full")

After failed attempt ``n`` (1-based) the delay is drawn from the window
``min(max, base * multiplier ** (n - 1))``:

- ``"full"`` (the default): uniform over ``[0, window]``, AWS's "full jitter".
  Clients that failed together spread out the most.
- ``"equal"``: uniform over ``[window / 2, window]``. Never tries again almost
  at once, for work that is expensive to repeat (connecting at startup).
- ``"none"``: exactly the window.

``Retry`` and the database's startup connect use it, so every caller computes
a delay the same way. The random draw comes from an injected
``random.Random`` so tests can seed it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

__all__ = ["Backoff", "Jitter"]

Jitter = Literal["full", "equal", "none"]
_JITTERS: tuple[Jitter, ...] = ("full", "equal", "none")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: ``backoff.delay(attempt, rng)`` is the next wait.

    ``base`` is the first window in seconds, multiplied by ``multiplier``
    after each failure and capped at ``max`` (the cap applies to the first
    window too); ``jitter`` is ``"full"``, ``"equal"`` or ``"none"``.
    """

    base: float = 0.1
    multiplier: float = 2.0
    max: float = 10.0
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base) and self.base > 0):
            raise ValueError(f"Backoff base must be positive and finite, got {self.base!r}")
        if not self.multiplier >= 1:
            raise ValueError(f"Backoff multiplier must be at least 1, got {self.multiplier!r}")
        if not self.max > 0:
            raise ValueError(f"Backoff max must be positive, got {self.max!r}")
        if self.jitter not in _JITTERS:
            raise ValueError(f"Backoff jitter must be one of {_JITTERS}, got {self.jitter!r}")

    def window(self, attempt: int) -> float:
        """The longest delay after failed attempt ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt!r}")
        try:
            grown = self.base * self.multiplier ** (attempt - 1)
        except OverflowError:
            grown = math.inf
        return min(self.max, grown)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after failed attempt ``attempt`` (1-based), drawn with ``rng``.

        Without ``rng`` the ``random`` module's shared generator draws.
        """
        window = self.window(attempt)
        if self.jitter == "none":
            return window
        draw = rng if rng is not None else random
        low = window / 2 if self.jitter == "equal" else 0.0
        return draw.uniform(low, window)
