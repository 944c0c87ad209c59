"""``ManualClock``: time that moves only when a test says so."""

from __future__ import annotations

__all__ = ["ManualClock"]


class ManualClock:
    """Seconds (monotonic or wall, as ``start`` suggests) for code taking a ``clock``.

    ``clock()`` reads it, ``advance(s)`` moves it, and ``await clock.sleep(s)``
    (for code taking a ``sleep``) moves it at once, recording ``s`` in ``slept``.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __repr__(self) -> str:
        return f"ManualClock({self.now!r})"

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
