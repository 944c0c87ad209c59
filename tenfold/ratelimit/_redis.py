"""``RedisBackend``: GCRA or a sliding-window log in one atomic Lua call per decision.

Standalone Redis or Cluster.

The script reads the server's ``TIME``, so the clocks of the instances that
share a limit never matter. It decides every rule of a call, writes the new
TATs only if all admit (``SET ... PX``: every key expires once rested), and
returns the time and the TATs it saw; the numbers a client is told
(remaining, retry-after, reset) are computed here from those, by the same
``outcome()`` the memory backend uses.

Storage keys are ``<prefix>{<key>}:<rule>``: the braces make every rule of one
key share a Cluster slot. Keys that already hold a hash tag keep it, which is
how several keys join one multi-rule decision (``{user:42}:ip:...`` and
``{user:42}:route:...``). A multi-rule call whose keys would span slots fails
with ``ValueError`` on standalone Redis too, so code that works there works
on a Cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from tenfold._errors import ConfigurationError
from tenfold._redis import (
    REDIS_ERRORS,
    cluster_seeds,
    connection_options,
    from_settings,
    hash_tag,
)
from tenfold._settings import RedisSettings
from tenfold.ratelimit._backend import check_request
from tenfold.ratelimit._errors import RateLimiterUnavailable
from tenfold.ratelimit._gcra import SLACK, Decision, to_decision
from tenfold.ratelimit._rule import Rule
from tenfold.ratelimit._window import WindowState, settle

__all__ = ["RedisBackend"]


# KEYS state... | ARGV cost, then per key: kind ('g' GCRA | 'w' sliding window), p1, p2
#   GCRA: p1 interval_us, p2 tolerance_us; the key holds the TAT (SET ... PX).
#   window: p1 period_us, p2 limit; the key is a ZSET of admission times (PEXPIRE).
# -> now_us, then per key: a, b, c, admitted (1/0), where GCRA gives a = max(tat, now)
# and window gives a = count, b = the entry that must leave first, c = the newest.
# Times as %.17g strings: Lua would turn numbers into truncated integers in the reply.
_GCRA = """
local function f(x) return string.format('%.17g', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local a, b, c, oks, all = {}, {}, {}, {}, true
for i = 1, #KEYS do
  local kind, p1, p2 = ARGV[3 * i - 1], tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  b[i], c[i] = 0, 0
  if kind == 'w' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', f(now - p1))
    local n = redis.call('ZCARD', KEYS[i])
    a[i] = n
    oks[i] = n + cost <= p2
    if n > 0 then
      c[i] = tonumber(redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')[2])
      if not oks[i] then
        local over = n + cost - p2
        b[i] = tonumber(redis.call('ZRANGE', KEYS[i], over - 1, over - 1, 'WITHSCORES')[2])
      end
    end
  else
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    a[i] = tat
    oks[i] = tat + cost * p1 - now <= p2 + p1 * SLACK
  end
  if not oks[i] then all = false end
end
local out = {f(now)}
for i = 1, #KEYS do
  local kind, p1 = ARGV[3 * i - 1], tonumber(ARGV[3 * i])
  if all and kind == 'w' then
    for k = 1, cost do
      redis.call('ZADD', KEYS[i], f(now), f(now) .. ':' .. (a[i] + k))
    end
    redis.call('PEXPIRE', KEYS[i], math.ceil(p1 / 1000) + 1)
  elseif all then
    local new = a[i] + cost * p1
    redis.call('SET', KEYS[i], f(new), 'PX', math.ceil((new - now) / 1000) + 1)
  end
  out[#out + 1] = f(a[i])
  out[#out + 1] = f(b[i])
  out[#out + 1] = f(c[i])
  out[#out + 1] = oks[i] and 1 or 0
end
return out
""".replace("SLACK", repr(SLACK))
_GCRA_SHA = hashlib.sha1(_GCRA.encode(), usedforsecurity=False).hexdigest()


class RedisBackend:
    """A ``LimiterBackend`` on Redis: ``from_url``, ``from_cluster`` or ``from_settings``.

    At most ``max_connections`` decisions are in flight; callers beyond that wait
    up to ``pool_timeout`` seconds, then get ``RateLimiterUnavailable``.
    """

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        prefix: str = "tf:rl:",
        max_connections: int = 64,
        pool_timeout: float = 0.25,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError(f"the rate-limit key prefix {prefix!r} must not hold braces")
        self._client = client
        self.cluster = isinstance(client, RedisCluster)
        self.name = "redis-cluster" if self.cluster else "redis"
        self.prefix = prefix
        self._bound = asyncio.Semaphore(max_connections)
        self._pool_timeout = pool_timeout
        # redis-py 8.1's async RedisCluster breaks connections when several commands race
        # its lazy first initialize(); so the first caller initializes, under a lock.
        self._initialized = not self.cluster
        self._init_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<RedisBackend {self.name} prefix={self.prefix!r}>"

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 0.25,
        connect_timeout: float = 1.0,
        max_connections: int = 64,
        **options: Any,
    ) -> RedisBackend:
        """A backend on the standalone server at ``url``; ``options`` are ``__init__``'s."""
        client = aioredis.Redis.from_url(
            url, **connection_options(socket_timeout, connect_timeout, max_connections)
        )
        return cls(client, max_connections=max_connections, **options)

    @classmethod
    def from_cluster(
        cls,
        nodes: Sequence[str],
        *,
        socket_timeout: float = 0.25,
        connect_timeout: float = 1.0,
        max_connections: int = 64,
        **options: Any,
    ) -> RedisBackend:
        """A backend on the Redis Cluster reachable through any of ``nodes`` (``host:port``)."""
        seeds = cluster_seeds(nodes)
        client = RedisCluster(
            startup_nodes=seeds,
            **connection_options(socket_timeout, connect_timeout, max_connections),
        )
        return cls(client, max_connections=max_connections, **options)

    @classmethod
    def from_settings(cls, settings: RedisSettings, **options: Any) -> RedisBackend:
        """The backend ``TENFOLD_REDIS__*`` describes (Cluster when cluster_nodes is set)."""
        return from_settings(
            settings,
            what="the Redis rate limiter",
            from_url=cls.from_url,
            from_cluster=cls.from_cluster,
            **options,
        )

    def storage_key(self, key: str, rule: Rule) -> str:
        """The Redis key holding ``key``'s TAT under ``rule``."""
        tagged = key if hash_tag(key) is not None else "{" + key + "}"
        return f"{self.prefix}{tagged}:{rule.ident}"

    async def hit(self, key: str, rule: Rule, cost: int = 1) -> Decision:
        return (await self.hit_many([(key, rule)], cost))[0]

    async def hit_many(
        self, key_rules: Sequence[tuple[str, Rule]], cost: int = 1
    ) -> list[Decision]:
        rules = [rule for _, rule in key_rules]
        check_request(key_rules, cost)
        names = [self.storage_key(key, rule) for key, rule in key_rules]
        if len({hash_tag(name) for name in names}) > 1:
            raise ValueError(
                f"the keys of one multi-rule decision must share a hash tag, got {names!r}; "
                "put the common part in braces, e.g. '{user:42}:ip:10.0.0.1'"
            )
        args: list[Any] = [cost]
        for rule in rules:
            if rule.sliding:
                args += ["w", repr(rule.rate.period * 1e6), rule.rate.limit]
            else:
                interval_us = rule.rate.emission_interval * 1e6
                args += ["g", repr(interval_us), repr(interval_us * rule.capacity)]
        reply = await self._eval(names, args)
        now = float(reply[0]) / 1e6
        states: list[float | WindowState] = []
        for i, rule in enumerate(rules):
            a, b, c = (float(x) for x in reply[1 + 4 * i : 4 + 4 * i])
            states.append(WindowState(int(a), b / 1e6, c / 1e6) if rule.sliding else a / 1e6)
        verdicts = [int(ok) == 1 for ok in reply[4::4]]
        results = settle(states, now, rules, cost, verdicts)
        return [to_decision(r, rule) for r, rule in zip(results, rules, strict=True)]

    async def _eval(
        self, names: list[str], args: list[Any], script: str = _GCRA, sha: str = _GCRA_SHA
    ) -> Any:
        try:
            async with asyncio.timeout(self._pool_timeout):
                await self._bound.acquire()
        except TimeoutError as exc:
            raise RateLimiterUnavailable(
                f"redis EVALSHA: no free connection within {self._pool_timeout} s"
            ) from exc
        try:
            if not self._initialized:
                await self._initialize()
            try:
                return await self._client.evalsha(sha, len(names), *names, *args)  # type: ignore[no-untyped-call]
            except NoScriptError:  # a restarted (or new) node: EVAL runs it and caches it
                return await self._client.eval(script, len(names), *names, *args)  # type: ignore[no-untyped-call]
        except REDIS_ERRORS as exc:
            raise RateLimiterUnavailable(
                f"redis rate-limit script failed: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self._bound.release()

    async def _initialize(self) -> None:
        async with self._init_lock:
            if not self._initialized:
                await self._client.initialize()  # type: ignore[union-attr]
                self._initialized = True

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()
