"""Model-based: MemoryBackend's GCRA decisions match a continuous-state leaky bucket.

The reference is the other classic form of the same algorithm (ITU-T I.371's
leaky bucket): a bucket of ``burst`` tokens' capacity that drains one token
per emission interval, in exact ``Fraction`` arithmetic. The clock moves in
whole milliseconds, which keeps every exact boundary far wider than the
float slack of the implementation.
"""

from __future__ import annotations

import asyncio
import math
from fractions import Fraction

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tenfold.ratelimit import MemoryBackend, Rate, Rule

from .conftest import FakeClock


class Bucket:
    """The reference: tokens in the bucket, drained continuously since the last admission."""

    def __init__(self, rule: Rule) -> None:
        self.interval = Fraction(rule.rate.period).limit_denominator() / rule.rate.limit
        self.capacity = rule.capacity
        self.level = Fraction(0)
        self.last = Fraction(0)

    def level_at(self, now: Fraction) -> Fraction:
        return max(Fraction(0), self.level - (now - self.last) / self.interval)

    def fits(self, now: Fraction, cost: int) -> bool:
        return self.level_at(now) + cost <= self.capacity

    def spend(self, now: Fraction, cost: int) -> None:
        self.level, self.last = self.level_at(now) + cost, now

    def remaining(self, now: Fraction) -> int:
        return math.floor(self.capacity - self.level_at(now))

    def retry_after(self, now: Fraction, cost: int) -> Fraction:
        return max(Fraction(0), (self.level_at(now) + cost - self.capacity) * self.interval)


rules = st.builds(
    lambda limit, period, extra: Rule(Rate(limit, period), burst=None if extra < 0 else extra + 1),
    st.integers(1, 10),
    st.sampled_from([1.0, 2.0, 60.0]),
    st.integers(-1, 12),
)


class GcraMachine(RuleBasedStateMachine):
    """Random hits, multi-rule hits and clock moves; every decision is checked against the model."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.start = self.clock.now
        self.backend = MemoryBackend(clock=self.clock)

    @initialize(first=rules, second=rules)
    def setup(self, first: Rule, second: Rule) -> None:
        self.rules = [first, second]
        self.buckets = [Bucket(first), Bucket(second)]

    def now(self) -> Fraction:
        return Fraction(round((self.clock.now - self.start) * 1000), 1000)

    @rule(ms=st.integers(0, 5000))
    def advance(self, ms: int) -> None:
        self.clock.now = self.start + float(self.now() + Fraction(ms, 1000))

    @precondition(lambda self: hasattr(self, "rules"))
    @rule(which=st.integers(0, 1), cost=st.integers(1, 13))
    def hit(self, which: int, cost: int) -> None:
        rule_, bucket = self.rules[which], self.buckets[which]
        cost = min(cost, rule_.capacity)
        now = self.now()
        expected = bucket.fits(now, cost)
        retry = bucket.retry_after(now, cost)
        if expected:
            bucket.spend(now, cost)
        got = self.loop.run_until_complete(self.backend.hit(f"k{which}", rule_, cost))
        assert got.allowed == expected
        assert got.remaining == bucket.remaining(now)
        assert math.isclose(got.retry_after, float(retry), abs_tol=1e-6)

    @precondition(lambda self: hasattr(self, "rules"))
    @rule()
    def hit_both(self) -> None:
        now = self.now()
        expected = [bucket.fits(now, 1) for bucket in self.buckets]
        if all(expected):
            for bucket in self.buckets:
                bucket.spend(now, 1)
        pairs = [(f"k{i}", r) for i, r in enumerate(self.rules)]
        got = self.loop.run_until_complete(self.backend.hit_many(pairs))
        assert [d.allowed for d in got] == expected
        assert [d.remaining for d in got] == [b.remaining(now) for b in self.buckets]

    @invariant()
    def never_more_than_capacity(self) -> None:
        for bucket in getattr(self, "buckets", []):
            assert bucket.level_at(self.now()) <= bucket.capacity

    def teardown(self) -> None:
        self.loop.close()


GcraMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestGcraModel = GcraMachine.TestCase
