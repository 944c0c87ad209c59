"""An upstream's quota shared by every instance through Redis.

``UpstreamQuota`` bounds one process; a provider's quota (Strava: 100 requests
per 15 minutes, 1000 per day) belongs to the whole application, so N
instances would send N times too much. ``RedisUpstreamQuota`` keeps, per
provider and window, the limit and the usage in Redis, plus the shared
``Retry-After`` block::

    <prefix>{provider}:15m | :daily | :ratelimit   hash: limit, used, reset (epoch ms), period
    <prefix>{provider}:block                       set with PX from a 429/503 Retry-After

The ``{provider}`` hash tag keeps one provider's keys on one Cluster slot, so
each operation is one Lua script: a reservation (refuse, or count one call in
every known window) and a lesson from a response (usage = max(stored,
reported) within the same window; limit = reported; Retry-After block). Every
key has a TTL: a one-off window's ends with it; a periodic window's outlives
its reset by one period, so the limit is still known in the next window.

A reservation is never given back. A call that got no response (connection
error) may not have reached the provider, which then did not count it: the
shared usage stays one above the provider's until the window resets, so the
application can only under-use the quota, never overshoot it.

Redis failures never reach the caller raw. With ``fail_open`` (the default)
the quota falls back to a local ``UpstreamQuota``, which learns from every
response anyway, so it starts warm; the bound is then per process until Redis
answers again. Without ``fail_open`` a call is refused
(``SharedQuotaUnavailable``) and never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from tenfold._errors import ConfigurationError
from tenfold._redis import REDIS_ERRORS, cluster_client, from_settings, standalone_client
from tenfold._settings import RedisSettings
from tenfold.observability import get_logger
from tenfold.resilience._quota import (
    _STRAVA_PERIODS,
    QuotaExhausted,
    UpstreamQuota,
    _ints,
    parse_retry_after,
)

__all__ = ["RedisUpstreamQuota", "SharedQuotaUnavailable"]

_log = get_logger("tenfold.resilience")

#: Window names, in the order of the window keys (KEYS[2..]) in both scripts.
_WINDOWS = ("15m", "daily", "ratelimit")
#: How long a key outlives the end of its window (so a slow clock still finds it).
_MARGIN_MS = 60_000
#: Resets closer than this are the same window (the draft's Reset is whole seconds).
_SAME_WINDOW_MS = 1_000

# KEYS[1] block, KEYS[2..] window hashes | ARGV[1] now ms (-1: Redis TIME), ARGV[2] margin ms.
# read_window(i) reads window i, rolling a periodic window whose reset passed (a one-off one is
# dropped); state() is the reply's tail: index, limit, used, reset for every known window.
_PRELUDE = """
local now = tonumber(ARGV[1])
if now < 0 then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local margin = tonumber(ARGV[2])
local function int(x) return string.format('%d', x) end
local function ttl(w) return int(w[3] - now + w[4] + margin) end
local function read_window(i)
  local h = redis.call('HMGET', KEYS[i], 'limit', 'used', 'reset', 'period')
  local limit = tonumber(h[1])
  if not limit then return nil end
  local w = {limit, tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4]) or 0}
  if now >= w[3] then
    if w[4] <= 0 then redis.call('DEL', KEYS[i]) return nil end
    w[2] = 0
    w[3] = (math.floor(now / w[4]) + 1) * w[4]
    redis.call('HSET', KEYS[i], 'used', 0, 'reset', int(w[3]))
    redis.call('PEXPIRE', KEYS[i], ttl(w))
  end
  return w
end
local function state(reply)
  for i = 2, #KEYS do
    local w = read_window(i)
    if w then
      for _, v in ipairs({i - 1, w[1], w[2], w[3]}) do reply[#reply + 1] = v end
    end
  end
  return reply
end
"""

# Reply: wait ms (0: reserved), the window that refused, now ms, then state().
_RESERVE = (
    _PRELUDE
    + """
local wait, which = 0, ''
local windows = {}
for i = 2, #KEYS do
  local w = read_window(i)
  if w then
    windows[i] = w
    if w[2] + 1 > w[1] and w[3] - now > wait then wait, which = w[3] - now, tostring(i - 1) end
  end
end
local block = redis.call('PTTL', KEYS[1])
if block > 0 and block >= wait then wait, which = block, 'retry-after' end
if wait == 0 then
  for i, w in pairs(windows) do
    redis.call('HINCRBY', KEYS[i], 'used', 1)
    redis.call('PEXPIRE', KEYS[i], ttl(w))
  end
end
return state({wait, which, now})
"""
)

# ARGV[3] block ms (0: none), ARGV[4] same-window tolerance ms; then per window key: limit
# (-1: not reported), used, period ms (0: one-off), ms until reset (one-off only).
# Reply as _RESERVE's, with wait 0.
_LEARN = (
    _PRELUDE
    + """
for i = 2, #KEYS do
  local base = 4 * (i - 2) + 5
  local limit = tonumber(ARGV[base])
  if limit >= 0 then
    local used, period = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
    local reset = now + tonumber(ARGV[base + 3])
    if period > 0 then reset = (math.floor(now / period) + 1) * period end
    local w, write = read_window(i), true
    if w and math.abs(reset - w[3]) <= tonumber(ARGV[4]) then
      used, reset = math.max(used, w[2]), w[3]
    elseif w and reset < w[3] then
      write = false -- a late answer about a window that has since been replaced
    end
    if write then
      w = {limit, used, reset, period}
      redis.call('HSET', KEYS[i], 'limit', limit, 'used', used, 'reset', int(reset),
        'period', period)
      redis.call('PEXPIRE', KEYS[i], ttl(w))
    end
  end
end
local block = tonumber(ARGV[3])
if block > 0 and redis.call('PTTL', KEYS[1]) < block then
  redis.call('SET', KEYS[1], '1', 'PX', block)
end
return state({0, '', now})
"""
)


class _Script:
    def __init__(self, body: str) -> None:
        self.body = body
        self.sha = hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()


_RESERVE_SCRIPT = _Script(_RESERVE)
_LEARN_SCRIPT = _Script(_LEARN)


class SharedQuotaUnavailable(QuotaExhausted):
    """The shared quota's Redis failed and ``fail_open`` is off; the call was not sent."""

    slug = "upstream-quota-unavailable"

    def __init__(self, provider: str, *, retry_after: float) -> None:
        super().__init__(provider, window="shared", retry_after=retry_after)
        self.message = f"{provider!r} quota cannot be checked: its Redis is unavailable"
        self.args = (self.message,)


@dataclass(slots=True, frozen=True)
class _Known:
    limit: int
    used: int
    resets_at: float  # on the local wall clock
    periodic: bool


class RedisUpstreamQuota:
    """One provider's quota, shared by every instance on one Redis.

    Used like ``UpstreamQuota``: ``await quota.before_request()`` before each
    send, then ``await quota.arecord(status, headers)`` (``ExternalClient``
    does both). ``clock`` is the wall clock (epoch seconds) that decides the
    windows; None (the default) uses Redis ``TIME``, one clock for every
    instance. ``sleep`` is the wait for refusals shorter than ``max_wait``.
    After a Redis failure the next ``retry_interval`` seconds skip Redis, so a
    slow Redis costs one timeout per interval, not one per call. The client
    given to ``__init__`` stays the caller's; those built by ``from_url``,
    ``from_cluster`` and ``from_settings`` are closed by ``aclose()``.
    """

    def __init__(
        self,
        provider: str,
        client: aioredis.Redis | RedisCluster,
        *,
        prefix: str = "tf:quota:",
        max_wait: float = 1.0,
        fail_open: bool = True,
        retry_interval: float = 1.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        owns_client: bool = False,
    ) -> None:
        if not provider or "{" in provider or "}" in provider:
            raise ConfigurationError(
                f"RedisUpstreamQuota needs a provider name without braces, got {provider!r}"
            )
        self.provider = provider
        self.prefix = prefix
        self.max_wait = max_wait
        self.fail_open = fail_open
        self.retry_interval = retry_interval
        self._client = client
        self._owns_client = owns_client
        self._clock = clock
        self._sleep = sleep
        base = f"{prefix}{{{provider}}}:"
        self._keys = [base + "block", *(base + name for name in _WINDOWS)]
        #: The per-process quota used while Redis is down; it learns from every response.
        self.local = UpstreamQuota(provider, max_wait=max_wait, clock=self._now, sleep=sleep)
        self._known: dict[str, _Known] = {}
        self._initialized = not isinstance(client, RedisCluster)
        self._init_lock = asyncio.Lock()
        self._skip_redis_until = 0.0
        self._last_error: BaseException | None = None
        self._pending: set[asyncio.Task[None]] = set()
        #: Whether Redis failed last time it was asked (the bound is per process meanwhile).
        self.degraded = False
        #: Redis failures, and reservations the local quota made instead.
        self.redis_errors = 0
        self.local_reservations = 0

    def __repr__(self) -> str:
        where = "local" if self.degraded else "shared"
        return f"RedisUpstreamQuota({self.provider!r}, {where}, remaining={self.remaining()})"

    @classmethod
    def from_url(
        cls,
        provider: str,
        url: str,
        *,
        socket_timeout: float = 0.25,
        connect_timeout: float = 1.0,
        max_connections: int = 16,
        **options: Any,
    ) -> RedisUpstreamQuota:
        """``provider``'s quota on the standalone server at ``url`` (options: ``__init__``'s)."""
        client = standalone_client(url, socket_timeout, connect_timeout, max_connections)
        return cls(provider, client, owns_client=True, **options)

    @classmethod
    def from_cluster(
        cls,
        provider: str,
        nodes: Sequence[str],
        *,
        socket_timeout: float = 0.25,
        connect_timeout: float = 1.0,
        max_connections: int = 16,
        **options: Any,
    ) -> RedisUpstreamQuota:
        """``provider``'s quota on the Redis Cluster reachable through ``nodes`` (``host:port``)."""
        client = cluster_client(nodes, socket_timeout, connect_timeout, max_connections)
        return cls(provider, client, owns_client=True, **options)

    @classmethod
    def from_settings(
        cls, provider: str, settings: RedisSettings, **options: Any
    ) -> RedisUpstreamQuota:
        """``provider``'s quota on the Redis ``TENFOLD_REDIS__*`` describes."""
        return from_settings(
            settings,
            what=f"the shared quota of {provider!r}",
            from_url=lambda url, **kw: cls.from_url(provider, url, **kw),
            from_cluster=lambda nodes, **kw: cls.from_cluster(provider, nodes, **kw),
            **options,
        )

    async def aclose(self) -> None:
        """Finish lessons still being sent (from ``record``), then close an owned client."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._owns_client:
            # A connection failing while closing leaves nothing to recover or report.
            with contextlib.suppress(*REDIS_ERRORS):
                await self._client.aclose()

    # -- the UpstreamQuota interface ------------------------------------------

    def remaining(self) -> dict[str, int]:
        """Requests left per known window, as of this instance's last Redis reply (no I/O)."""
        if self.degraded:
            return self.local.remaining()
        now = self._now()
        left = {}
        for name, known in self._known.items():
            if now < known.resets_at:
                left[name] = max(0, known.limit - known.used)
            elif known.periodic:
                left[name] = known.limit
        return left

    async def before_request(self) -> None:
        """Reserve one request, waiting up to ``max_wait``; else raise ``QuotaExhausted``."""
        while time.monotonic() >= self._skip_redis_until:
            try:
                window, wait = await self._reserve()
            except REDIS_ERRORS as exc:
                self._failed(exc)
                break
            if wait <= 0:
                return
            if wait > self.max_wait:
                raise QuotaExhausted(self.provider, window=window, retry_after=wait)
            await self._sleep(wait)
        await self._reserve_locally()

    async def arecord(self, status_code: int | None, headers: Mapping[str, str] | None) -> None:
        """Learn from the response (None: nothing came back); the reservation stays counted."""
        self.local.record(status_code, headers)
        if headers is None:
            return
        headers = {key.lower(): value for key, value in headers.items()}
        args = _reported(headers)
        block_ms = 0
        if status_code in (429, 503):
            retry_after = parse_retry_after(headers.get("retry-after"), self._now())
            block_ms = math.ceil(retry_after * 1000) if retry_after else 0
        if block_ms <= 0 and all(arg == -1 for arg in args[::4]):
            return  # nothing to teach the others
        if time.monotonic() < self._skip_redis_until:
            return  # the local quota learned it
        try:
            reply = await self._eval(_LEARN_SCRIPT, block_ms, _SAME_WINDOW_MS, *args)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return
        self._remember(reply)

    def record(self, status_code: int | None, headers: Mapping[str, str] | None) -> None:
        """``arecord`` for callers that cannot await: the lesson is sent by a task."""
        task = asyncio.get_running_loop().create_task(self.arecord(status_code, headers))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- Redis side -------------------------------------------------------------

    def _now(self) -> float:
        return self._clock() if self._clock is not None else time.time()

    async def _reserve(self) -> tuple[str, float]:
        reply = await self._eval(_RESERVE_SCRIPT)
        self._remember(reply)
        wait_ms, which = int(reply[0]), _text(reply[1])
        if which.isdigit():
            which = _WINDOWS[int(which) - 1]
        return which, wait_ms / 1000

    async def _reserve_locally(self) -> None:
        if not self.fail_open:
            raise SharedQuotaUnavailable(
                self.provider, retry_after=self.retry_interval
            ) from self._last_error
        await self.local.before_request()
        self.local_reservations += 1

    async def _eval(self, script: _Script, *args: Any) -> Any:
        now_ms = -1 if self._clock is None else int(self._clock() * 1000)
        argv = (now_ms, _MARGIN_MS, *args)
        if not self._initialized:
            await self._initialize()
        try:
            result = await self._client.evalsha(script.sha, len(self._keys), *self._keys, *argv)  # type: ignore[no-untyped-call]
        except NoScriptError:  # a restarted (or new) node: EVAL runs it and caches it
            result = await self._client.eval(script.body, len(self._keys), *self._keys, *argv)  # type: ignore[no-untyped-call]
        if self.degraded:
            self.degraded = False
            _log.info("quota_shared_redis_back", provider=self.provider)
        return result

    async def _initialize(self) -> None:
        # redis-py's async RedisCluster breaks connections when commands race its lazy
        # first initialize(); so the first caller initializes, under a lock.
        async with self._init_lock:
            if not self._initialized:
                await self._client.initialize()  # type: ignore[union-attr]
                self._initialized = True

    def _failed(self, exc: BaseException) -> None:
        self.redis_errors += 1
        self._last_error = exc
        self._skip_redis_until = time.monotonic() + self.retry_interval
        if not self.degraded:  # logged once per outage, counted every time
            self.degraded = True
            _log.warning(
                "quota_shared_redis_down",
                provider=self.provider,
                error=f"{type(exc).__name__}: {exc}",
                fallback="local" if self.fail_open else "refuse",
            )

    def _remember(self, reply: Sequence[Any]) -> None:
        now_ms, now = int(reply[2]), self._now()
        known = {}
        for i in range(3, len(reply), 4):
            index, limit, used, reset_ms = (int(v) for v in reply[i : i + 4])
            name = _WINDOWS[index - 1]
            resets_at = now + (reset_ms - now_ms) / 1000
            known[name] = _Known(limit, used, resets_at, periodic=name != "ratelimit")
        self._known = known


def _reported(headers: Mapping[str, str]) -> list[int]:
    """Per window in ``_WINDOWS`` order: limit (-1: not reported), used, period ms, reset ms."""
    args = {name: [-1, 0, 0, 0] for name in _WINDOWS}
    limits = _ints(headers.get("x-ratelimit-limit"))
    usages = _ints(headers.get("x-ratelimit-usage"))
    if limits and len(limits) == len(usages):
        for (name, period), limit, used in zip(_STRAVA_PERIODS, limits, usages, strict=False):
            args[name] = [limit, used, int(period * 1000), 0]
    remaining = _ints(headers.get("ratelimit-remaining"))
    reset = _ints(headers.get("ratelimit-reset"))
    if remaining and reset:
        limit = (_ints(headers.get("ratelimit-limit")) or [remaining[0]])[0]
        args["ratelimit"] = [limit, max(0, limit - remaining[0]), 0, reset[0] * 1000]
    return [value for name in _WINDOWS for value in args[name]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
