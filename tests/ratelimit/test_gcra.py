"""The pure GCRA function and the memory backend under a controlled clock."""

from __future__ import annotations

import json

import pytest

from tenfold.ratelimit import PROBLEMS, Decision, MemoryBackend, Rate, RateLimited, Rule, decide
from tenfold.web import ProblemRegistry, problem_for_exception

from .conftest import FakeClock

RULE = Rule(Rate.parse("10/second"), burst=3)


def test_fresh_key_is_admitted() -> None:
    """An unknown key (TAT None) is admitted and its TAT moves one interval past now."""
    allowed, new_tat, remaining, retry_after, reset_after = decide(None, 50.0, RULE)
    assert (allowed, remaining, retry_after) == (True, 2, 0.0)
    assert new_tat == pytest.approx(50.1)
    assert reset_after == pytest.approx(0.1)


def test_refusal_keeps_the_tat() -> None:
    """A refused request leaves the TAT as it was and says how long to wait."""
    allowed, new_tat, remaining, retry_after, _ = decide(50.3, 50.0, RULE)
    assert (allowed, new_tat, remaining) == (False, 50.3, 0)
    assert retry_after == pytest.approx(0.1)


def test_a_rested_past_tat_counts_as_now() -> None:
    """A TAT in the past gives no credit beyond the burst."""
    assert decide(10.0, 50.0, RULE)[:3] == decide(None, 50.0, RULE)[:3]


def test_cost_is_checked() -> None:
    """Costs below 1 or above the burst are errors."""
    with pytest.raises(ValueError, match="at least 1"):
        decide(None, 0.0, RULE, cost=0)
    with pytest.raises(ValueError, match="exceeds the burst"):
        decide(None, 0.0, RULE, cost=4)


async def test_tokens_come_back_at_the_rate(clock: FakeClock) -> None:
    """After the burst is spent, one request is admitted per emission interval."""
    backend = MemoryBackend(clock=clock)
    assert [(await backend.hit("k", RULE)).allowed for _ in range(4)] == [True] * 3 + [False]
    refused = await backend.hit("k", RULE)
    clock.advance(refused.retry_after)
    assert (await backend.hit("k", RULE)).allowed
    assert not (await backend.hit("k", RULE)).allowed


async def test_rested_key_gets_the_whole_burst_back(clock: FakeClock) -> None:
    """Once reset_after has passed, the key has its whole burst again."""
    backend = MemoryBackend(clock=clock)
    last = await backend.hit("k", RULE, cost=3)
    clock.advance(last.reset_after)
    assert (await backend.hit("k", RULE)).remaining == 2


async def test_costly_request_waits_for_enough_tokens(clock: FakeClock) -> None:
    """A cost-2 request is refused until two tokens have come back."""
    backend = MemoryBackend(clock=clock)
    await backend.hit("k", RULE, cost=3)
    clock.advance(0.1)
    refused = await backend.hit("k", RULE, cost=2)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    assert (await backend.hit("k", RULE, cost=2)).allowed


async def test_sweep_forgets_rested_keys(clock: FakeClock) -> None:
    """Rested keys are dropped by the periodic sweep; active ones are kept."""
    backend = MemoryBackend(clock=clock, sweep_every=2)
    await backend.hit("old", RULE)
    clock.advance(1.0)
    await backend.hit("new", RULE)
    assert repr(backend) == "<MemoryBackend 1 keys>"


def test_rate_limited_carries_the_numbers() -> None:
    """RateLimited is a 429 with Retry-After in whole seconds, rounded up."""
    error = RateLimited.from_decision(Decision(False, 100, 0, 1.2, 60.0))
    assert (error.retry_after, error.limit, error.remaining, error.reset) == (1.2, 100, 0, 60.0)
    problem = ProblemRegistry(PROBLEMS).lookup(error)
    assert problem is not None
    assert problem.status == 429
    assert problem.headers is not None
    assert problem.headers(error) == {"Retry-After": "2"}
    assert problem.extensions is not None
    assert problem.extensions(error) == {"retry_after": 2, "limit": 100}


def test_rate_limited_renders_as_problem_json() -> None:
    """tenfold.web renders RateLimited as a 429 problem+json with Retry-After."""
    error = RateLimited(retry_after=0.3, limit=10)
    response = problem_for_exception(error, ProblemRegistry(PROBLEMS))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = json.loads(response.body)
    assert (body["type"], body["limit"]) == ("https://tenfold.dev/problems/rate-limited", 10)
