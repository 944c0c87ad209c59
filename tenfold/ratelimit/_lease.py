"""``LeasedBackend``: local-lease mode — spend batches of tokens taken from a shared limiter.

On a hot path most decisions need no round trip: an instance takes a *lease*
of up to ``lease_size`` tokens from the shared limiter in one atomic decision
(a hit costing the lease, on the shared GCRA or sliding window) and spends
them locally. Only when a key's lease runs out (or ages past ``max_age``) does
it go back to the shared limiter.

The bound: each instance holds at most ``lease_size`` unspent tokens per
``(key, rule)`` at any moment (leftovers too few for a request are dropped
before a new lease is taken), and every token spent was granted by the
shared limiter. So over any span, the admissions of ``n`` instances exceed
what the shared limiter granted in that span by at most ``lease_size * n``:
with a sliding-window rule of ``limit`` per ``period``, no window of
``period`` seconds admits more than ``limit + lease_size * n``. Tokens leased
but never spent (an idle instance, an expired lease) are lost to everyone:
the mode under-admits by up to the same amount.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from tenfold.ratelimit._backend import LimiterBackend, check_request
from tenfold.ratelimit._gcra import Decision
from tenfold.ratelimit._rule import Rule

__all__ = ["LeasedBackend"]


@dataclass(slots=True)
class _Lease:
    tokens: int = 0
    expires: float = 0.0
    shared: Decision | None = None  # the shared limiter's last word on this key
    taken_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LeasedBackend:
    """A ``LimiterBackend`` spending leases of ``lease_size`` tokens taken from ``shared``.

    ``max_age`` (seconds) drops a lease's unspent tokens, so a quiet instance
    does not sit on them; ``clock`` is injectable. The ``RateLimit-*`` numbers
    of a locally admitted request are estimates: the shared ``remaining`` at
    the last lease plus the tokens still held here. ``refills`` counts the
    round trips to the shared limiter.
    """

    def __init__(
        self,
        shared: LimiterBackend,
        *,
        lease_size: int = 10,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_size < 1:
            raise ValueError(f"lease_size must be at least 1, got {lease_size}")
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age}")
        self.shared = shared
        self.name = f"leased-{shared.name}"
        self.lease_size = lease_size
        self.max_age = max_age
        self._clock = clock
        self._leases: dict[tuple[str, str], _Lease] = {}
        self.refills = 0

    def __repr__(self) -> str:
        return f"<LeasedBackend lease_size={self.lease_size} on {self.shared!r}>"

    async def hit(self, key: str, rule: Rule, cost: int = 1) -> Decision:
        return (await self.hit_many([(key, rule)], cost))[0]

    async def hit_many(
        self, key_rules: Sequence[tuple[str, Rule]], cost: int = 1
    ) -> list[Decision]:
        check_request(key_rules, cost)
        slots = [(key, rule.ident) for key, rule in key_rules]
        leases = [self._leases.setdefault(slot, _Lease()) for slot in slots]
        if not self._all_hold(leases, cost):
            # Sorted, so two requests over the same keys never wait on each other's locks.
            order = sorted(range(len(slots)), key=slots.__getitem__)
            async with AsyncExitStack() as stack:
                for i in order:
                    await stack.enter_async_context(leases[i].lock)
                for (key, rule), lease in zip(key_rules, leases, strict=True):
                    if not self._holds(lease, cost):
                        await self._refill(key, rule, lease, cost)
        admitted = self._all_hold(leases, cost)
        if admitted:
            for lease in leases:
                lease.tokens -= cost
        now = self._clock()
        return [
            self._report(lease, rule, admitted or self._holds(lease, cost), now)
            for (_, rule), lease in zip(key_rules, leases, strict=True)
        ]

    def _holds(self, lease: _Lease, cost: int) -> bool:
        return lease.tokens >= cost and self._clock() < lease.expires

    def _all_hold(self, leases: Sequence[_Lease], cost: int) -> bool:
        return all(self._holds(lease, cost) for lease in leases)

    async def _refill(self, key: str, rule: Rule, lease: _Lease, cost: int) -> None:
        lease.tokens = 0  # leftovers below the cost are dropped: at most lease_size held
        take = max(cost, min(self.lease_size, rule.capacity))
        self.refills += 1
        decision = await self.shared.hit(key, rule, cost=take)
        if not decision.allowed and cost <= decision.remaining < take:
            take = decision.remaining  # fewer than a full lease left: take what there is
            self.refills += 1
            decision = await self.shared.hit(key, rule, cost=take)
        lease.shared, lease.taken_at = decision, self._clock()
        if decision.allowed:
            lease.tokens, lease.expires = take, lease.taken_at + self.max_age
        if len(self._leases) > 4096:
            self._sweep(lease.taken_at)

    def _report(self, lease: _Lease, rule: Rule, allowed: bool, now: float) -> Decision:
        shared = lease.shared
        if shared is None:
            return Decision(allowed, rule.limit, lease.tokens, 0.0, 0.0)
        elapsed = now - lease.taken_at
        return Decision(
            allowed,
            rule.limit,
            min(rule.capacity, shared.remaining + lease.tokens) if allowed else 0,
            0.0 if allowed else max(0.0, shared.retry_after - elapsed),
            max(0.0, shared.reset_after - elapsed),
        )

    def _sweep(self, now: float) -> None:
        self._leases = {
            slot: lease
            for slot, lease in self._leases.items()
            if lease.expires > now or lease.lock.locked()
        }

    async def aclose(self) -> None:
        """Drop the leases (their unspent tokens are lost) and close the shared backend."""
        self._leases.clear()
        await self.shared.aclose()
