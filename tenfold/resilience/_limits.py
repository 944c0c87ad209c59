"""Time limits and bulkheads: bounds on how long and how many calls run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import ParamSpec, TypeVar

from tenfold.resilience._errors import BulkheadFull, DeadlineExceeded
from tenfold.resilience._events import CallRejected, Hook, emit, log_event

__all__ = ["Bulkhead", "Timeout"]

P = ParamSpec("P")
T = TypeVar("T")


class Timeout:
    """Cancel a call after ``seconds`` and raise ``DeadlineExceeded`` (``asyncio.timeout``).

    ``name`` labels the ``DeadlineExceeded``. A ``TimeoutError`` raised by the
    call itself (not by this limit) passes through unchanged.
    """

    def __init__(self, seconds: float, *, name: str = "timeout") -> None:
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(f"seconds must be a positive number, got {seconds!r}")
        self.name = name
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"Timeout({self.seconds}, name={self.name!r})"

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        limit = asyncio.timeout(self.seconds)
        try:
            async with limit:
                return await fn(*args, **kwargs)
        except TimeoutError as exc:
            if limit.expired():
                raise DeadlineExceeded(self.name, seconds=self.seconds) from exc
            raise


class Bulkhead:
    """At most ``max_concurrent`` calls at once, ``max_waiting`` more queued.

    A call that finds the queue full is refused with ``BulkheadFull`` at once;
    a queued call that waits longer than ``max_wait`` seconds (if set) too.
    """

    def __init__(
        self,
        name: str,
        *,
        max_concurrent: int = 10,
        max_waiting: int = 0,
        max_wait: float | None = None,
        hooks: Sequence[Hook] = (log_event,),
    ) -> None:
        if max_concurrent < 1 or max_waiting < 0:
            raise ValueError("max_concurrent must be >= 1 and max_waiting >= 0")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_waiting = max_waiting
        self.max_wait = max_wait
        self.hooks = tuple(hooks)
        self._slots = asyncio.Semaphore(max_concurrent)
        self.waiting = 0
        self.running = 0

    def __repr__(self) -> str:
        return (
            f"Bulkhead({self.name!r}, max_concurrent={self.max_concurrent},"
            f" max_waiting={self.max_waiting}, waiting={self.waiting})"
        )

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        await self._acquire()
        self.running += 1
        try:
            return await fn(*args, **kwargs)
        finally:
            self.running -= 1
            self._slots.release()

    async def _acquire(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: returns without suspending
            return
        if self.waiting >= self.max_waiting:
            self._reject("full")
        self.waiting += 1
        try:
            async with asyncio.timeout(self.max_wait):
                await self._slots.acquire()
        except TimeoutError:
            self._reject("wait_timeout")
        finally:
            self.waiting -= 1

    def _reject(self, reason: str) -> None:
        emit(self.hooks, CallRejected("bulkhead", self.name, reason))
        raise BulkheadFull(
            self.name, max_concurrent=self.max_concurrent, max_waiting=self.max_waiting
        )
