"""``LeasedBackend``: local-lease mode — spend batches of tokens taken from a shared limiter.

On a hot path most decisions need no round trip: an instance takes a *lease*
of up to ``L`` tokens (``lease_for(rule)``) from the shared limiter in one atomic decision
(a hit costing the lease, on the shared GCRA or sliding window) and spends
them locally. Only when a key's lease runs out (or ages past ``max_age``) does
it go back to the shared limiter.

The bound: each instance holds at most ``L`` unspent tokens per
``(key, rule)`` at any moment (leftovers too few for a request are dropped
before a new lease is taken), and every token spent was granted by the
shared limiter. So over any span, the admissions of ``n`` instances exceed
what the shared limiter granted in that span by at most ``L * n``:
with a sliding-window rule of ``limit`` per ``period``, no window of
``period`` seconds admits more than ``limit + L * n``. Tokens leased
but never spent (an idle instance, an expired lease) are lost to everyone:
the mode under-admits by up to the same amount.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from tenfold.observability import get_logger
from tenfold.ratelimit._backend import LimiterBackend, check_request
from tenfold.ratelimit._errors import RateLimiterUnavailable
from tenfold.ratelimit._gcra import Decision, check_cost
from tenfold.ratelimit._rule import Rule

__all__ = ["AUTO_LEASE_BASE", "AUTO_LEASE_DIVISOR", "AUTO_LEASE_HORIZON", "LeasedBackend"]

#: Without a ``lease_size``, a lease never exceeds ``burst // AUTO_LEASE_DIVISOR`` tokens
#: (5% of the burst: the over-admission bound per instance). Within that it starts at
#: ``AUTO_LEASE_BASE`` and grows to cover ``AUTO_LEASE_HORIZON`` seconds of the key's
#: observed rate, so a hot key costs a few round trips per second whatever its traffic.
AUTO_LEASE_DIVISOR = 20
AUTO_LEASE_BASE = 100
AUTO_LEASE_HORIZON = 0.25
#: Leases this small are not prefetched: half of one is too little to hide a round trip.
_PREFETCH_MIN = 4
_log = get_logger("tenfold.ratelimit")


@dataclass(slots=True)
class _Lease:
    tokens: int = 0
    expires: float = 0.0
    shared: Decision | None = None  # the shared limiter's last word on this key
    taken_at: float = 0.0
    # A refusal by the shared limiter for requests costing >= refused_cost holds until
    # refused_until: other instances can only have spent more since, never less.
    refused_until: float = 0.0
    refused_cost: int = 0
    # Prefetch (a background refill) starts when tokens fall to `low`; -1: never.
    size: int = 0
    low: int = -1
    prefetching: bool = False
    # The key's spending rate here (tokens/s, smoothed), measured between refills.
    rate: float = 0.0
    spent: int = 0
    measured_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LeasedBackend:
    """A ``LimiterBackend`` spending leases of tokens taken from ``shared``.

    A lease is ``lease_size`` tokens (capped at the rule's burst) or, when
    ``lease_size`` is None (the default), sized by ``lease_for`` per rule and per
    key's observed rate: at most a twentieth of the burst, so the over-admission
    bound stays a small fraction of every limit however different they are.
    With ``prefetch`` a lease is topped up in the background once half spent.

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
        lease_size: int | None = None,
        max_age: float = 1.0,
        prefetch: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_size is not None and lease_size < 1:
            raise ValueError(f"lease_size must be at least 1, got {lease_size}")
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age}")
        self.shared = shared
        self.name = f"leased-{shared.name}"
        self.lease_size = lease_size
        self.max_age = max_age
        self._clock = clock
        self.prefetch = prefetch
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._prefetches: set[asyncio.Task[None]] = set()
        self.refills = 0
        #: Background refills that failed (the backend was unavailable); the next
        #: request that finds the lease empty asks in the foreground and sees the error.
        self.prefetch_failures = 0

    def __repr__(self) -> str:
        size = "auto" if self.lease_size is None else self.lease_size
        return f"<LeasedBackend lease_size={size} on {self.shared!r}>"

    def lease_for(self, rule: Rule, rate: float = 0.0) -> int:
        """Tokens one lease of ``rule`` takes when the key spends ``rate`` tokens/s here.

        ``lease_size`` when given (capped at the burst). By default at most a
        twentieth of the burst (5% over-admission per instance), at least 1; within
        that, ``AUTO_LEASE_BASE`` or a quarter second of ``rate``, whichever is more.
        """
        if self.lease_size is not None:
            return min(self.lease_size, rule.capacity)
        ceiling = max(1, rule.capacity // AUTO_LEASE_DIVISOR)
        return min(ceiling, max(AUTO_LEASE_BASE, int(rate * AUTO_LEASE_HORIZON)))

    async def hit(self, key: str, rule: Rule, cost: int = 1) -> Decision:
        return (await self.hit_many(((key, rule),), cost))[0]

    async def hit_many(
        self, key_rules: Sequence[tuple[str, Rule]], cost: int = 1
    ) -> list[Decision]:
        if len(key_rules) == 1:
            # The hot path: one rule, its lease holds the cost; no round trip, no lock.
            key, rule = key_rules[0]
            check_cost(rule, cost)
            lease = self._leases.get((key, rule.ident))
            if lease is not None and lease.tokens >= cost:
                now = self._clock()
                if now < lease.expires:
                    lease.tokens -= cost
                    lease.spent += cost
                    if lease.tokens <= lease.low and not lease.prefetching:
                        self._start_prefetch(key, rule, lease)
                    return [self._report(lease, rule, True, now)]
        else:
            check_request(key_rules, cost)
        slots = [(key, rule.ident) for key, rule in key_rules]
        leases = [self._leases.setdefault(slot, _Lease()) for slot in slots]
        now = self._clock()
        if self._refused(leases, cost, now):
            return [
                self._report(lease, rule, self._holds(lease, cost, now), now)
                for (_, rule), lease in zip(key_rules, leases, strict=True)
            ]
        if not self._all_hold(leases, cost, now):
            # Sorted, so two requests over the same keys never wait on each other's locks.
            order = sorted(range(len(slots)), key=slots.__getitem__)
            async with AsyncExitStack() as stack:
                for i in order:
                    await stack.enter_async_context(leases[i].lock)
                for (key, rule), lease in zip(key_rules, leases, strict=True):
                    now = self._clock()
                    if not self._holds(lease, cost, now) and not self._refused((lease,), cost, now):
                        await self._refill(key, rule, lease, cost)
        now = self._clock()
        admitted = self._all_hold(leases, cost, now)
        if admitted:
            for (key, rule), lease in zip(key_rules, leases, strict=True):
                lease.tokens -= cost
                lease.spent += cost
                if lease.tokens <= lease.low and not lease.prefetching:
                    self._start_prefetch(key, rule, lease)
        return [
            self._report(lease, rule, admitted or self._holds(lease, cost, now), now)
            for (_, rule), lease in zip(key_rules, leases, strict=True)
        ]

    @staticmethod
    def _holds(lease: _Lease, cost: int, now: float) -> bool:
        return lease.tokens >= cost and now < lease.expires

    def _all_hold(self, leases: Sequence[_Lease], cost: int, now: float) -> bool:
        return all(self._holds(lease, cost, now) for lease in leases)

    @staticmethod
    def _refused(leases: Sequence[_Lease], cost: int, now: float) -> bool:
        """Whether a refusal the shared limiter gave still stands for one of ``leases``."""
        return any(
            now < lease.refused_until and cost >= lease.refused_cost and lease.tokens < cost
            for lease in leases
        )

    async def _refill(self, key: str, rule: Rule, lease: _Lease, cost: int) -> None:
        lease.tokens = 0  # leftovers below the cost are dropped: at most lease_size held
        size = self.lease_for(rule, self._measure(lease))
        take = max(cost, size)
        self.refills += 1
        decision = await self.shared.hit(key, rule, cost=take)
        if not decision.allowed and take > cost:
            # Fewer than a full lease left: take what there is, or learn when `cost` fits.
            take = max(cost, decision.remaining)
            self.refills += 1
            decision = await self.shared.hit(key, rule, cost=take)
        lease.shared, lease.taken_at = decision, self._clock()
        if decision.allowed:
            lease.tokens, lease.expires = take, lease.taken_at + self.max_age
            lease.refused_until = 0.0
            self._resize(lease, max(take, size))
        elif take == cost:
            # Refused for exactly this cost: answer locally until its retry-after.
            lease.refused_until = lease.taken_at + decision.retry_after
            lease.refused_cost = cost
        if len(self._leases) > 4096:
            self._sweep(lease.taken_at)

    def _resize(self, lease: _Lease, size: int) -> None:
        """A refilled lease's size, and the level that starts its next prefetch."""
        lease.size = size
        lease.low = size // 2 if self.prefetch and size >= _PREFETCH_MIN else -1

    def _measure(self, lease: _Lease) -> float:
        """Update the key's smoothed spending rate here; returns it (tokens/s)."""
        now = self._clock()
        elapsed = now - lease.measured_at
        if lease.measured_at and elapsed > 0:
            current = lease.spent / elapsed
            lease.rate = current if not lease.rate else (lease.rate + current) / 2
        lease.spent, lease.measured_at = 0, now
        return lease.rate

    def _start_prefetch(self, key: str, rule: Rule, lease: _Lease) -> None:
        lease.prefetching = True
        task = asyncio.get_running_loop().create_task(self._prefetch(key, rule, lease))
        self._prefetches.add(task)
        task.add_done_callback(self._prefetches.discard)

    async def _prefetch(self, key: str, rule: Rule, lease: _Lease) -> None:
        """Top the lease up to its size in the background, so no request waits for Redis.

        Tokens keep being spent while the round trip is under way, and what is
        taken is what was missing when it started, so the lease never holds more
        than its size: the bound is unchanged.
        """
        try:
            async with lease.lock:
                size = self.lease_for(rule, self._measure(lease))
                take = size - lease.tokens
                if lease.tokens > lease.low or self._clock() >= lease.expires or take < 1:
                    return  # refilled in the foreground meanwhile, or expired: nothing to do
                self.refills += 1
                decision = await self.shared.hit(key, rule, cost=take)
                if decision.allowed:
                    lease.tokens += take
                    lease.shared, lease.taken_at = decision, self._clock()
                    lease.expires = lease.taken_at + self.max_age
                    self._resize(lease, size)
        except RateLimiterUnavailable:
            self.prefetch_failures += 1
        except Exception:  # never an unretrieved task error; the foreground path reports
            self.prefetch_failures += 1
            _log.exception("ratelimit_prefetch_failed", key=key, rule=rule.ident)
        finally:
            lease.prefetching = False

    def _report(self, lease: _Lease, rule: Rule, allowed: bool, now: float) -> Decision:
        shared = lease.shared
        if shared is None:
            return Decision(allowed, rule.limit, lease.tokens, 0.0, 0.0)
        elapsed = now - lease.taken_at
        if allowed:
            remaining = shared.remaining + lease.tokens
            capacity = rule.capacity
            return Decision(
                True,
                rule.limit,
                capacity if remaining > capacity else remaining,
                0.0,
                max(0.0, shared.reset_after - elapsed),
            )
        return Decision(
            False,
            rule.limit,
            0,
            max(0.0, shared.retry_after - elapsed),
            max(0.0, shared.reset_after - elapsed),
        )

    def _sweep(self, now: float) -> None:
        self._leases = {
            slot: lease
            for slot, lease in self._leases.items()
            if lease.expires > now or lease.refused_until > now or lease.lock.locked()
        }

    async def aclose(self) -> None:
        """Drop the leases (their unspent tokens are lost) and close the shared backend."""
        for task in list(self._prefetches):
            task.cancel()
        if self._prefetches:
            await asyncio.gather(*self._prefetches, return_exceptions=True)
        self._leases.clear()
        await self.shared.aclose()
