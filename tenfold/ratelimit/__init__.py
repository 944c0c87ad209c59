"""Rate limiting: GCRA rules decided atomically, in memory or in Redis (standalone or Cluster).

    rule = Rule(Rate.parse("100/minute"), burst=20)
    backend = RedisBackend.from_settings(settings.redis)   # or MemoryBackend()
    decision = await backend.hit("user:42", rule)
    if not decision.allowed:
        raise RateLimited.from_decision(decision)

``hit_many`` decides several rules at once, all-or-nothing (100/minute *and*
1000/day). See ``docs/ratelimit.md`` for the algorithm and its guarantees.
"""

from tenfold.ratelimit._backend import LimiterBackend
from tenfold.ratelimit._errors import RateLimited, RateLimiterUnavailable
from tenfold.ratelimit._gcra import Decision, decide
from tenfold.ratelimit._memory import MemoryBackend
from tenfold.ratelimit._redis import RedisBackend
from tenfold.ratelimit._rule import Rate, Rule

__all__ = [
    "Decision",
    "LimiterBackend",
    "MemoryBackend",
    "Rate",
    "RateLimited",
    "RateLimiterUnavailable",
    "RedisBackend",
    "Rule",
    "decide",
]
