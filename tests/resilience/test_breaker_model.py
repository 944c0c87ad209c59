"""A hypothesis state machine checks the breaker against a reference model."""

from __future__ import annotations

import asyncio

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tenfold.resilience import CircuitBreaker, CircuitOpen, CountWindow

from .conftest import FakeClock

SIZE, MINIMUM, PROBES, OPEN_FOR, SLOW = 5, 3, 2, 10.0, 1.0


class Model:
    """The documented semantics, written as plainly as possible."""

    def __init__(self) -> None:
        self.state = "closed"
        self.outcomes: list[tuple[bool, bool]] = []
        self.open_until = 0.0

    def tick(self, now: float) -> None:
        if self.state == "open" and now >= self.open_until:
            self.state, self.outcomes = "half_open", []

    def admits(self, now: float) -> bool:
        self.tick(now)
        return self.state == "closed" or (self.state == "half_open" and len(self.outcomes) < PROBES)

    def record(self, now: float, failed: bool, slow: bool) -> None:
        self.outcomes = [*self.outcomes, (failed, slow)][-SIZE:]
        n = len(self.outcomes)
        bad = (
            sum(f for f, _ in self.outcomes) / n >= 0.5
            or sum(s for _, s in self.outcomes) / n >= 0.5
        )
        if (self.state == "closed" and n >= MINIMUM and bad) or (
            self.state == "half_open" and n >= PROBES and bad
        ):
            self.state, self.outcomes, self.open_until = "open", [], now + OPEN_FOR
        elif self.state == "half_open" and n >= PROBES:
            self.state, self.outcomes = "closed", []


class BreakerMachine(RuleBasedStateMachine):
    """Random calls (failed or not, slow or not) and clock moves; states must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.model = Model()
        self.breaker = CircuitBreaker(
            "m",
            failure_rate=0.5,
            slow_rate=0.5,
            slow_call_seconds=SLOW,
            window=CountWindow(SIZE),
            minimum_calls=MINIMUM,
            open_for=OPEN_FOR,
            half_open_probes=PROBES,
            clock=self.clock,
            hooks=(),
        )

    @rule(failed=st.booleans(), slow=st.booleans())
    def call(self, failed: bool, slow: bool) -> None:
        clock = self.clock

        async def fn() -> None:
            clock.advance(SLOW if slow else 0.0)
            if failed:
                raise ConnectionError

        admitted = self.model.admits(clock.now)
        start = clock.now
        try:
            asyncio.run(self.breaker.call(fn))
        except CircuitOpen:
            assert not admitted
            return
        except ConnectionError:
            pass
        assert admitted
        self.model.record(clock.now, failed, clock.now - start >= SLOW)

    @rule(seconds=st.floats(min_value=0, max_value=2 * OPEN_FOR))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def same_state(self) -> None:
        self.model.tick(self.clock.now)
        assert self.breaker.state == self.model.state


TestBreakerModel = BreakerMachine.TestCase
TestBreakerModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
