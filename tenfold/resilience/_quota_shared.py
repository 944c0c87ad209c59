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
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from tenfold._errors import ConfigurationError
from tenfold._settings import RedisSettings
from tenfold.observability import get_logger
from tenfold.redis import REDIS_ERRORS, RedisHub
from tenfold.resilience._errors import QuotaExhausted, SharedQuotaUnavailable
from tenfold.resilience._quota import (
    _STRAVA_PERIODS,
    PERIODS,
    UpstreamQuota,
    _ints,
    check_limits,
    parse_retry_after,
)
from tenfold.resilience._quota_scripts import (
    LEARN_SCRIPT,
    MARGIN_MS,
    RESERVE_SCRIPT,
    SAME_WINDOW_MS,
    WINDOWS,
    Script,
)

__all__ = ["RedisUpstreamQuota"]

_log = get_logger("tenfold.resilience")


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
    slow Redis costs one timeout per interval, not one per call. It runs on a
    ``RedisHub`` (the platform's); the hubs ``from_url``, ``from_cluster`` and
    ``from_settings`` make are closed by ``aclose()``.
    """

    def __init__(
        self,
        provider: str,
        hub: RedisHub,
        *,
        prefix: str = "tf:quota:",
        limits: Mapping[str, int] | None = None,
        max_wait: float = 1.0,
        fail_open: bool = True,
        retry_interval: float = 1.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        owns_hub: bool = False,
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
        self.hub = hub
        self._client = hub.client
        self._owns_hub = owns_hub
        self._clock = clock
        self._sleep = sleep
        base = f"{prefix}{{{provider}}}:"
        self._keys = [base + "block", *(base + name for name in WINDOWS)]
        #: The per-process quota used while Redis is down; it learns from every response.
        self.local = UpstreamQuota(
            provider, limits=limits, max_wait=max_wait, clock=self._now, sleep=sleep
        )
        # Known limits, taught to Redis before this instance's first reservation.
        self._seed = _configured(check_limits(limits))
        self._known: dict[str, _Known] = {}
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
    def from_url(cls, provider: str, url: str, **options: Any) -> RedisUpstreamQuota:
        """``provider``'s quota on a hub of its own for the standalone server at ``url``."""
        return cls(provider, RedisHub.from_url(url), owns_hub=True, **options)

    @classmethod
    def from_cluster(
        cls, provider: str, nodes: Sequence[str], **options: Any
    ) -> RedisUpstreamQuota:
        """``provider``'s quota on a hub of its own for the Cluster reachable through ``nodes``."""
        return cls(provider, RedisHub.from_cluster(nodes), owns_hub=True, **options)

    @classmethod
    def from_settings(
        cls, provider: str, settings: RedisSettings, **options: Any
    ) -> RedisUpstreamQuota:
        """``provider``'s quota on a hub of its own for the Redis ``TENFOLD_REDIS__*`` describes."""
        return cls(provider, RedisHub.from_settings(settings), owns_hub=True, **options)

    async def aclose(self) -> None:
        """Finish lessons still being sent (from ``record``), then close an owned hub."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._owns_hub:
            await self.hub.aclose()

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
                if self._seed is not None:
                    self._remember(await self._eval(LEARN_SCRIPT, 0, SAME_WINDOW_MS, *self._seed))
                    self._seed = None
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
            reply = await self._eval(LEARN_SCRIPT, block_ms, SAME_WINDOW_MS, *args)
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
        reply = await self._eval(RESERVE_SCRIPT)
        self._remember(reply)
        wait_ms, which = int(reply[0]), _text(reply[1])
        if which.isdigit():
            which = WINDOWS[int(which) - 1]
        return which, wait_ms / 1000

    async def _reserve_locally(self) -> None:
        if not self.fail_open:
            raise SharedQuotaUnavailable(
                self.provider, retry_after=self.retry_interval
            ) from self._last_error
        await self.local.before_request()
        self.local_reservations += 1

    async def _eval(self, script: Script, *args: Any) -> Any:
        now_ms = -1 if self._clock is None else int(self._clock() * 1000)
        argv = (now_ms, MARGIN_MS, *args)
        if not self.hub.initialized:
            await self.hub.initialize()
        try:
            result = await self._client.evalsha(script.sha, len(self._keys), *self._keys, *argv)  # type: ignore[no-untyped-call]
        except NoScriptError:  # a restarted (or new) node: EVAL runs it and caches it
            result = await self._client.eval(script.body, len(self._keys), *self._keys, *argv)  # type: ignore[no-untyped-call]
        if self.degraded:
            self.degraded = False
            _log.info("quota_shared_redis_back", provider=self.provider)
        return result

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
            name = WINDOWS[index - 1]
            resets_at = now + (reset_ms - now_ms) / 1000
            known[name] = _Known(limit, used, resets_at, periodic=name != "ratelimit")
        self._known = known


def _reported(headers: Mapping[str, str]) -> list[int]:
    """Per window in ``WINDOWS`` order: limit (-1: not reported), used, period ms, reset ms."""
    args = {name: [-1, 0, 0, 0] for name in WINDOWS}
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
    return [value for name in WINDOWS for value in args[name]]


def _configured(limits: Mapping[str, int]) -> list[int] | None:
    """``limits`` as the lesson script's arguments (usage 0: it never lowers what is known)."""
    if not limits:
        return None
    args = {name: [-1, 0, 0, 0] for name in WINDOWS}
    for name, limit in limits.items():
        args[name] = [limit, 0, int(PERIODS[name] * 1000), 0]
    return [value for name in WINDOWS for value in args[name]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
