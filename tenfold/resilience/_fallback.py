"""A fallback chain: try providers in order, skipping those whose breaker is open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, ParamSpec, TypeVar

from tenfold.resilience._errors import CircuitOpen, NoProviderAvailable
from tenfold.resilience._policy import Policy

__all__ = ["FallbackChain", "Provider"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Provider(Generic[P, T]):
    """One way to get the answer: ``fn`` called through ``policy``."""

    name: str
    fn: Callable[P, Awaitable[T]]
    policy: Policy = field(default_factory=Policy)


class FallbackChain(Generic[P, T]):
    """Call the first provider that answers; ``await chain.call(*args)``.

    A provider whose breaker is open is skipped without being called, so a
    dead provider costs nothing once its breaker has opened. An error that
    ``fallback_on`` selects moves on to the next provider; others propagate.
    When every provider fails, ``NoProviderAvailable`` carries each error.
    """

    def __init__(
        self,
        name: str,
        providers: Sequence[Provider[P, T]],
        *,
        fallback_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    ) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        self.name = name
        self.providers = tuple(providers)
        self.fallback_on = fallback_on

    def __repr__(self) -> str:
        return f"FallbackChain({self.name!r}, {[p.name for p in self.providers]})"

    async def call(self, *args: P.args, **kwargs: P.kwargs) -> T:
        errors: dict[str, BaseException] = {}
        for provider in self.providers:
            breaker = provider.policy.breaker
            if breaker is not None and breaker.is_open:
                errors[provider.name] = CircuitOpen(
                    breaker.name, state="open", retry_after=breaker.open_for
                )
                continue
            try:
                return await provider.policy.call(provider.fn, *args, **kwargs)
            except self.fallback_on as exc:
                errors[provider.name] = exc
        raise NoProviderAvailable(self.name, errors=errors)
