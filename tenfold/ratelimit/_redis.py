"""``RedisBackend``: GCRA or a sliding-window log in one atomic Lua call per decision.

Standalone Redis or Cluster, through the process's ``RedisHub``.

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

Decisions requested in the same event-loop iteration are *coalesced*: the
first one waits one iteration (``asyncio.sleep(0)``) while the others join
it, then all go to Redis as one pipeline of EVALSHA calls (``transaction=False``;
each script is still atomic on its own). A lone decision is sent as a plain
EVALSHA. Under concurrency this cuts the client's per-decision cost, which is
mostly redis-py's per-command overhead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple

from tenfold._errors import ConfigurationError
from tenfold._settings import RedisSettings
from tenfold.ratelimit._backend import check_request
from tenfold.ratelimit._errors import RateLimiterUnavailable
from tenfold.ratelimit._gcra import SLACK, Decision, check_cost, outcome, to_decision
from tenfold.ratelimit._rule import Rule
from tenfold.ratelimit._window import WindowState, settle
from tenfold.redis import RedisHub, RedisUnavailable, hash_tag

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
# What every call sends unchanged, as bytes, which redis-py's encoder passes through as is.
_GCRA_SHA_BYTES = _GCRA_SHA.encode()
_COSTS = {n: str(n).encode() for n in range(1, 65)}


#: Rules whose script arguments are kept; rules are configuration, so this is a safety net.
_MAX_SPECS = 1024


class _Spec(NamedTuple):
    """A rule's share of the script call, worked out once per rule."""

    suffix: str  # ":<rule ident>", the end of its storage keys
    args: tuple[Any, ...]  # kind, p1, p2 (see the script)
    capacity: int


def _spec(rule: Rule) -> _Spec:
    if rule.sliding:
        args: tuple[Any, ...] = ("w", repr(rule.rate.period * 1e6), rule.rate.limit)
    else:
        interval_us = rule.rate.emission_interval * 1e6
        args = ("g", repr(interval_us), repr(interval_us * rule.capacity))
    return _Spec(":" + rule.ident, tuple(str(arg).encode() for arg in args), rule.capacity)


class RedisBackend:
    """A ``LimiterBackend`` on a ``RedisHub``: the platform's, or one made by ``from_url``,
    ``from_cluster`` or ``from_settings`` (closed with this backend).

    Decisions go through the hub's script batcher, within its in-flight bound;
    a Redis failure is ``RateLimiterUnavailable``. ``round_trips`` counts the
    commands and pipelines sent on the hub.
    """

    def __init__(self, hub: RedisHub, *, prefix: str = "tf:rl:", owns_hub: bool = False) -> None:
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError(f"the rate-limit key prefix {prefix!r} must not hold braces")
        self.hub = hub
        self.cluster = hub.cluster
        self.name = hub.kind
        self.prefix = prefix
        self._owns_hub = owns_hub
        self._batcher = hub.scripts
        self._specs: dict[Rule, _Spec] = {}

    def __repr__(self) -> str:
        return f"<RedisBackend {self.name} prefix={self.prefix!r}>"

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "tf:rl:", **hub_options: Any) -> RedisBackend:
        """A backend on a hub of its own for the standalone server at ``url``;
        ``hub_options`` are ``RedisHub.from_url``'s (``socket_timeout``...)."""
        return cls(RedisHub.from_url(url, **hub_options), prefix=prefix, owns_hub=True)

    @classmethod
    def from_cluster(
        cls, nodes: Sequence[str], *, prefix: str = "tf:rl:", **hub_options: Any
    ) -> RedisBackend:
        """A backend on a hub of its own for the Cluster reachable through ``nodes``."""
        return cls(RedisHub.from_cluster(nodes, **hub_options), prefix=prefix, owns_hub=True)

    @classmethod
    def from_settings(
        cls, settings: RedisSettings, *, prefix: str = "tf:rl:", **hub_options: Any
    ) -> RedisBackend:
        """A backend on a hub of its own for the Redis ``TENFOLD_REDIS__*`` describes."""
        hub = RedisHub.from_settings(settings, **hub_options)
        return cls(hub, prefix=prefix, owns_hub=True)

    async def ping(self) -> None:
        """Raise ``RateLimiterUnavailable`` unless Redis answers (the readiness check)."""
        try:
            await self.hub.ping()
        except RedisUnavailable as exc:
            raise RateLimiterUnavailable(exc.message) from exc

    def storage_key(self, key: str, rule: Rule) -> str:
        """The Redis key holding ``key``'s TAT under ``rule``."""
        tagged = key if hash_tag(key) is not None else "{" + key + "}"
        return f"{self.prefix}{tagged}:{rule.ident}"

    def _spec_of(self, rule: Rule) -> _Spec:
        spec = self._specs.get(rule)
        if spec is None:
            if len(self._specs) >= _MAX_SPECS:
                self._specs.clear()
            spec = self._specs[rule] = _spec(rule)
        return spec

    async def hit(self, key: str, rule: Rule, cost: int = 1) -> Decision:
        # hit_many() for one pair, without its lists: this is the hot path.
        spec = self._spec_of(rule)
        if not 1 <= cost <= spec.capacity:
            check_cost(rule, cost)
        if "{" in key:
            name = self.storage_key(key, rule)
        else:
            name = self.prefix + "{" + key + "}" + spec.suffix
        reply = await self._eval((name,), (_COSTS.get(cost, cost), *spec.args))
        now = float(reply[0]) / 1e6
        admitted = int(reply[4]) == 1
        if rule.sliding:
            state = WindowState(int(float(reply[1])), float(reply[2]) / 1e6, float(reply[3]) / 1e6)
            numbers = settle([state], now, [rule], cost, [admitted])[0]
        else:  # what settle() does for a single GCRA rule
            numbers = outcome(float(reply[1]) / 1e6, now, rule, cost, admitted)
        return to_decision(numbers, rule)

    async def hit_many(
        self, key_rules: Sequence[tuple[str, Rule]], cost: int = 1
    ) -> list[Decision]:
        if len(key_rules) == 1:
            key, rule = key_rules[0]
            return [await self.hit(key, rule, cost)]
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
            args += self._spec_of(rule).args
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
        self,
        names: Sequence[str],
        args: Sequence[Any],
        script: str = _GCRA,
        sha: str | bytes = _GCRA_SHA_BYTES,
    ) -> Any:
        try:
            return await self._batcher.eval(names, args, script, sha)
        except RedisUnavailable as exc:  # each caller gets its own instance
            raise RateLimiterUnavailable(exc.message) from exc

    @property
    def round_trips(self) -> int:
        """Commands and pipelines sent so far (on the hub, by every user of its batcher)."""
        return self._batcher.round_trips

    async def aclose(self) -> None:
        """Wait for the pipelines in flight; close the hub if this backend made it."""
        await self._batcher.drain()
        if self._owns_hub:
            await self.hub.aclose()
