"""A ``Policy``: retry, breaker, bulkhead and time limit in one declared order.

The order is fixed, as in Resilience4j: ``Retry(CircuitBreaker(Bulkhead(
Timeout(call))))``. Each retry attempt passes the breaker afresh (so an open
breaker ends the retries, or waits its ``retry_after``), a call refused by the
bulkhead never reaches the upstream, and the time limit bounds one attempt
while the retry's ``deadline`` bounds them all.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from tenfold.resilience._breaker import CircuitBreaker
from tenfold.resilience._limits import Bulkhead, Timeout
from tenfold.resilience._retry import Retry

__all__ = ["Policy"]

P = ParamSpec("P")
T = TypeVar("T")


class Policy:
    """Any of retry, breaker, bulkhead and timeout; ``await policy.call(fn, *args)``.

    Also a decorator for async functions that keeps their signature::

        @Policy(retry=Retry("llm"), breaker=CircuitBreaker("llm"))
        async def complete(prompt: str) -> str: ...
    """

    def __init__(
        self,
        *,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        bulkhead: Bulkhead | None = None,
        timeout: Timeout | None = None,
    ) -> None:
        self.retry = retry
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.timeout = timeout

    def __repr__(self) -> str:
        parts = [f"{k}={v!r}" for k, v in self._layers() if v is not None]
        return f"Policy({', '.join(parts)})"

    def _layers(self) -> list[tuple[str, Retry | CircuitBreaker | Bulkhead | Timeout | None]]:
        # Outermost first: the one declared order.
        return [
            ("retry", self.retry),
            ("breaker", self.breaker),
            ("bulkhead", self.bulkhead),
            ("timeout", self.timeout),
        ]

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through every configured layer."""
        call: Callable[[], Awaitable[T]] = functools.partial(fn, *args, **kwargs)
        for _, layer in reversed(self._layers()):
            if layer is not None:
                call = functools.partial(layer.call, call)
        return await call()

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return wrapper
