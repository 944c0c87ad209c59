"""The LimiterBackend contract, run against memory, Redis and Redis Cluster.

Redis decides with its own clock, so every rule here is slow enough (per day)
that no token comes back during a test: the assertions are about counts.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

import pytest

from tenfold.ratelimit import LimiterBackend, MemoryBackend, Rate, RedisBackend, Rule

DAY = 86_400.0


class BackendContract(abc.ABC):
    @abc.abstractmethod
    def make(self, request: pytest.FixtureRequest) -> LimiterBackend: ...

    @pytest.fixture
    async def backend(self, request: pytest.FixtureRequest) -> AsyncIterator[LimiterBackend]:
        backend = self.make(request)
        yield backend
        await backend.aclose()

    async def test_is_a_limiter_backend(self, backend: LimiterBackend) -> None:
        """The backend satisfies the LimiterBackend protocol."""
        assert isinstance(backend, LimiterBackend)

    async def test_admits_the_limit_then_refuses(self, backend: LimiterBackend, ns: str) -> None:
        """A fresh key admits exactly the limit, counting remaining down to zero."""
        rule = Rule(Rate(3, DAY))
        decisions = [await backend.hit(ns, rule) for _ in range(5)]
        assert [d.allowed for d in decisions] == [True, True, True, False, False]
        assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
        assert {d.limit for d in decisions} == {3}

    async def test_refusal_says_when_to_retry(self, backend: LimiterBackend, ns: str) -> None:
        """A refused decision's retry_after is one emission interval; reset_after the period."""
        rule = Rule(Rate(2, DAY))
        await backend.hit(ns, rule)
        await backend.hit(ns, rule)
        refused = await backend.hit(ns, rule)
        assert not refused.allowed
        assert DAY / 2 - 5 < refused.retry_after <= DAY / 2
        assert DAY - 5 < refused.reset_after <= DAY

    async def test_admitted_decision_has_no_retry_after(
        self, backend: LimiterBackend, ns: str
    ) -> None:
        """An admitted decision has retry_after 0 and reset_after of the time it spent."""
        decision = await backend.hit(ns, Rule(Rate(4, DAY)))
        assert decision.allowed
        assert decision.retry_after == 0
        assert DAY / 4 - 5 < decision.reset_after <= DAY / 4

    async def test_burst_caps_requests_at_once(self, backend: LimiterBackend, ns: str) -> None:
        """A burst below the limit admits only burst requests at once."""
        rule = Rule(Rate(100, DAY), burst=2)
        allowed = [(await backend.hit(ns, rule)).allowed for _ in range(4)]
        assert allowed == [True, True, False, False]

    async def test_cost_spends_several(self, backend: LimiterBackend, ns: str) -> None:
        """A request with cost c spends c, and a refused costly request spends nothing."""
        rule = Rule(Rate(10, DAY))
        assert (await backend.hit(ns, rule, cost=4)).remaining == 6
        assert (await backend.hit(ns, rule, cost=4)).remaining == 2
        refused = await backend.hit(ns, rule, cost=4)
        assert (refused.allowed, refused.remaining) == (False, 2)
        assert (await backend.hit(ns, rule, cost=2)).remaining == 0

    async def test_cost_above_burst_is_an_error(self, backend: LimiterBackend, ns: str) -> None:
        """A cost no rested key could admit is a ValueError, not a refusal."""
        with pytest.raises(ValueError, match="exceeds the burst"):
            await backend.hit(ns, Rule(Rate(10, DAY), burst=3), cost=4)

    async def test_a_pair_twice_is_an_error(self, backend: LimiterBackend, ns: str) -> None:
        """The same (key, rule) twice in one decision is a ValueError."""
        rule = Rule(Rate(5, DAY))
        with pytest.raises(ValueError, match="twice"):
            await backend.hit_many([(ns, rule), (ns, rule)])

    async def test_keys_and_rules_are_independent(self, backend: LimiterBackend, ns: str) -> None:
        """Another key, or another rule on the same key, has its own budget."""
        rule = Rule(Rate(1, DAY))
        assert (await backend.hit(ns + ":a", rule)).allowed
        assert not (await backend.hit(ns + ":a", rule)).allowed
        assert (await backend.hit(ns + ":b", rule)).allowed
        assert (await backend.hit(ns + ":a", Rule(Rate(2, DAY)))).allowed

    async def test_many_rules_are_all_or_nothing(self, backend: LimiterBackend, ns: str) -> None:
        """A request refused by one rule is counted against none of them."""
        short, long = Rule(Rate(2, DAY)), Rule(Rate(5, DAY))
        pairs = [(ns, short), (ns, long)]
        first = await backend.hit_many(pairs)
        await backend.hit_many(pairs)
        refused = await backend.hit_many(pairs)
        assert [d.remaining for d in first] == [1, 4]
        assert [d.allowed for d in refused] == [False, True]
        assert refused[1].remaining == 3
        assert (await backend.hit(ns, long)).remaining == 2

    async def test_many_rules_on_keys_sharing_a_tag(self, backend: LimiterBackend, ns: str) -> None:
        """Keys sharing a hash tag can join one decision, each keeping its own budget."""
        rule = Rule(Rate(1, DAY))
        pairs = [("{" + ns + "}:user", rule), ("{" + ns + "}:ip", rule)]
        assert all(d.allowed for d in await backend.hit_many(pairs))
        assert not any(d.allowed for d in await backend.hit_many(pairs))

    async def test_sliding_window_admits_the_limit(self, backend: LimiterBackend, ns: str) -> None:
        """A sliding-window rule admits exactly the limit and counts remaining down."""
        rule = Rule(Rate(3, DAY), algorithm="sliding_window")
        decisions = [await backend.hit(ns, rule) for _ in range(5)]
        assert [d.allowed for d in decisions] == [True, True, True, False, False]
        assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
        assert DAY - 5 < decisions[0].reset_after <= DAY
        assert DAY - 5 < decisions[-1].retry_after <= DAY

    async def test_sliding_window_cost(self, backend: LimiterBackend, ns: str) -> None:
        """A costly request spends several entries; a refused one spends none."""
        rule = Rule(Rate(10, DAY), algorithm="sliding_window")
        assert (await backend.hit(ns, rule, cost=4)).remaining == 6
        assert (await backend.hit(ns, rule, cost=4)).remaining == 2
        refused = await backend.hit(ns, rule, cost=4)
        assert (refused.allowed, refused.remaining) == (False, 2)
        assert (await backend.hit(ns, rule, cost=2)).remaining == 0

    async def test_mixed_algorithms_are_all_or_nothing(
        self, backend: LimiterBackend, ns: str
    ) -> None:
        """A GCRA rule and a sliding-window rule decide one request together."""
        window = Rule(Rate(2, DAY), algorithm="sliding_window")
        gcra = Rule(Rate(5, DAY))
        pairs = [(ns, window), (ns, gcra)]
        assert all(d.allowed for d in await backend.hit_many(pairs))
        assert all(d.allowed for d in await backend.hit_many(pairs))
        refused = await backend.hit_many(pairs)
        assert [d.allowed for d in refused] == [False, True]
        assert refused[1].remaining == 3
        assert (await backend.hit(ns, gcra)).remaining == 2


class TestMemoryBackend(BackendContract):
    def make(self, request: pytest.FixtureRequest) -> LimiterBackend:
        return MemoryBackend()


class TestRedisBackend(BackendContract):
    def make(self, request: pytest.FixtureRequest) -> LimiterBackend:
        server = request.getfixturevalue("redis_server")
        return RedisBackend.from_url(server.url, socket_timeout=2.0)


class TestRedisClusterBackend(BackendContract):
    def make(self, request: pytest.FixtureRequest) -> LimiterBackend:
        cluster = request.getfixturevalue("redis_cluster")
        return RedisBackend.from_cluster(cluster.startup_nodes, socket_timeout=2.0)
