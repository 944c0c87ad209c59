"""Rate limiting: GCRA rules decided atomically, in memory or in Redis (standalone or Cluster).

    rule = Rule(Rate.parse("100/minute"), burst=20)
    backend = RedisBackend.from_settings(settings.redis)   # or MemoryBackend()
    decision = await backend.hit("user:42", rule)
    if not decision.allowed:
        raise RateLimited.from_decision(decision)

``RateLimitMiddleware`` applies ``Policy`` objects (key function + rules) to
an app, to path prefixes or route templates, or to endpoints marked with
``@rate_limit``. ``hit_many`` decides several rules at once, all-or-nothing (100/minute *and*
1000/day). ``RateLimitComponent`` builds an app's backend and policies from
``TENFOLD_RATELIMIT__*`` (``create_app`` does this; code-defined policies go in
``RateLimits``). ``PROBLEMS`` says how ``RateLimited`` (429) and
``RateLimiterUnavailable`` (503) are answered, for a
``tenfold.web.ProblemRegistry``. See ``docs/ratelimit.md`` for the algorithm and its guarantees.
"""

from tenfold.ratelimit._backend import LimiterBackend
from tenfold.ratelimit._component import (
    RateLimitComponent,
    RateLimits,
)
from tenfold.ratelimit._errors import PROBLEMS, RateLimited, RateLimiterUnavailable
from tenfold.ratelimit._extension import RateLimitExtension
from tenfold.ratelimit._gcra import Decision, decide
from tenfold.ratelimit._keys import (
    ROUTE_TEMPLATE,
    KeyFunc,
    by_api_key,
    by_ip,
    by_route,
    by_user,
    composite,
)
from tenfold.ratelimit._lease import LeasedBackend
from tenfold.ratelimit._memory import MemoryBackend
from tenfold.ratelimit._middleware import RateLimitMiddleware, ratelimit_headers
from tenfold.ratelimit._policy import Policy, policies_of, rate_limit
from tenfold.ratelimit._redis import RedisBackend
from tenfold.ratelimit._rule import ALGORITHMS, Rate, Rule
from tenfold.ratelimit._settings import RateLimitSettings
from tenfold.ratelimit._stats import RateLimitStats
from tenfold.ratelimit._websocket import ConnectionLimiter
from tenfold.web import IPNetwork, client_ip, parse_networks

__all__ = [
    "ALGORITHMS",
    "PROBLEMS",
    "ROUTE_TEMPLATE",
    "ConnectionLimiter",
    "Decision",
    "IPNetwork",
    "KeyFunc",
    "LeasedBackend",
    "LimiterBackend",
    "MemoryBackend",
    "Policy",
    "Rate",
    "RateLimitComponent",
    "RateLimitExtension",
    "RateLimitMiddleware",
    "RateLimitSettings",
    "RateLimitStats",
    "RateLimited",
    "RateLimiterUnavailable",
    "RateLimits",
    "RedisBackend",
    "Rule",
    "by_api_key",
    "by_ip",
    "by_route",
    "by_user",
    "client_ip",
    "composite",
    "decide",
    "parse_networks",
    "policies_of",
    "rate_limit",
    "ratelimit_headers",
]
