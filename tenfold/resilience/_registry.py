"""``UpstreamRegistry``: an app's outbound clients, built from ``TENFOLD_UPSTREAM__*``.

``platform.upstream("strava", base_url=...)`` builds an ``ExternalClient``
whose ``Policy`` comes from the settings (the defaults, then the provider's
``TENFOLD_UPSTREAM__PROVIDERS`` entry, then the call's overrides)::

    Retry(attempts, deadline)  ->  CircuitBreaker(count window)  ->  Bulkhead

with httpx's ``Timeout(timeout, connect=connect_timeout)`` bounding each
attempt. Transient upstream failures (``transient``: unreachable, timeouts,
429/502/503/504) are retried; every upstream failure (``upstream_failure``,
a 500 too) counts against the breaker; a locally refused call does neither.
Every client shares the registry's ``ClientStats`` and ``ResilienceStats``,
which are registered with the app's metrics while it runs, and ``stop()``
closes every client.

With Redis configured (and ``TENFOLD_UPSTREAM__SHARED``, the default) the
instances of an app share what they learn about a provider: every breaker
follows one ``RedisBreakerState`` (an open on one instance opens the others),
and ``quota=True`` tracks the provider's quota in a ``RedisUpstreamQuota``
(its 15-minute and daily limits are the application's, not the process's).
Without Redis both are per process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, TypedDict, Unpack

import httpx

from tenfold._settings import RedisSettings
from tenfold.redis import RedisHub
from tenfold.resilience._breaker import CircuitBreaker, CountWindow
from tenfold.resilience._client import ClientStats, ExternalClient, upstream_failure
from tenfold.resilience._events import ResilienceStats, log_event
from tenfold.resilience._limits import Bulkhead
from tenfold.resilience._policy import Policy
from tenfold.resilience._quota import QuotaTracker, UpstreamQuota
from tenfold.resilience._quota_shared import RedisUpstreamQuota
from tenfold.resilience._retry import Retry, transient
from tenfold.resilience._settings import UpstreamPolicy, UpstreamSettings
from tenfold.resilience._shared import RedisBreakerState

if TYPE_CHECKING:
    from tenfold.observability import Metrics

__all__ = ["UpstreamOverrides", "UpstreamRegistry"]


class UpstreamOverrides(TypedDict, total=False):
    """Per-call overrides of ``UpstreamPolicy`` (the ``TENFOLD_UPSTREAM__*`` names)."""

    timeout: float
    connect_timeout: float
    retry_attempts: int
    retry_deadline: float | None
    failure_rate: float
    slow_rate: float
    slow_call_seconds: float
    minimum_calls: int
    window_size: int
    open_for: float
    half_open_probes: int
    max_concurrent: int
    max_waiting: int
    quota_limits: dict[str, int]


class UpstreamRegistry:
    """The app's ``ExternalClient`` s by provider (a tenfold Component named ``upstream``)."""

    name = "upstream"

    def __init__(
        self,
        settings: UpstreamSettings | None = None,
        *,
        metrics: Metrics | None = None,
        redis: RedisSettings | None = None,
        hub: RedisHub | None = None,
    ) -> None:
        self.settings = settings if settings is not None else UpstreamSettings()
        self._metrics = metrics
        share = self.settings.shared and (hub is not None or (redis is not None and redis.enabled))
        self._own_hub: RedisHub | None = None
        if share and hub is None:
            hub = self._own_hub = RedisHub.from_settings(redis)  # type: ignore[arg-type]
        self._hub = hub if share else None
        #: Breaker opens and closes shared with the other instances (None: per process).
        self.breaker_state = RedisBreakerState(self._hub) if self._hub is not None else None
        self._quotas: list[RedisUpstreamQuota] = []
        namespace = getattr(metrics, "namespace", "tenfold")
        #: Requests by provider and outcome, and quotas: shared by every client.
        self.stats = ClientStats(namespace)
        #: Breaker states, calls, retries and rejections: a hook of every policy.
        self.events = ResilienceStats(namespace)
        self._clients: dict[str, ExternalClient] = {}
        self._registered = False

    def __repr__(self) -> str:
        return f"<UpstreamRegistry {sorted(self._clients)}>"

    def __getitem__(self, provider: str) -> ExternalClient:
        return self._clients[provider]

    def __contains__(self, provider: object) -> bool:
        return provider in self._clients

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._clients))

    def __len__(self) -> int:
        return len(self._clients)

    def policy(self, provider: str, **overrides: Unpack[UpstreamOverrides]) -> UpstreamPolicy:
        """The settings ``provider``'s client gets (validated: a bad override is a ValueError)."""
        return self.settings.policy_for(provider, **overrides)

    def client(
        self,
        provider: str,
        *,
        base_url: str = "",
        quota: QuotaTracker | bool | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **overrides: Unpack[UpstreamOverrides],
    ) -> ExternalClient:
        """A new ``ExternalClient`` for ``provider``, kept here and closed on ``stop()``.

        ``quota=True`` tracks the provider's advertised quota: shared by every
        instance through Redis when it is configured, else per process. One client
        per provider: asking again for a provider is a ``ValueError`` (use
        ``registry[provider]``), since two clients would split its breaker.
        """
        if provider in self._clients:
            raise ValueError(
                f"an upstream client for {provider!r} exists; use platform.upstreams[{provider!r}]"
            )
        settings = self.policy(provider, **overrides)
        if quota is True or (quota is None and settings.quota_limits):
            quota = self._quota(provider, settings.quota_limits)
        client = ExternalClient(
            provider,
            base_url=base_url,
            policy=self._policy(provider, settings),
            quota=quota or None,
            stats=self.stats,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            headers=headers,
            transport=transport,
        )
        self._clients[provider] = client
        return client

    def _policy(self, provider: str, s: UpstreamPolicy) -> Policy:
        hooks = (log_event, self.events)
        return Policy(
            retry=Retry(
                provider,
                attempts=s.retry_attempts,
                deadline=s.retry_deadline,
                # A 500 is the provider's bug: sending the same request again will not fix it.
                retry_on=transient,
                hooks=hooks,
            ),
            breaker=CircuitBreaker(
                provider,
                failure_rate=s.failure_rate,
                slow_rate=s.slow_rate,
                slow_call_seconds=s.slow_call_seconds,
                window=CountWindow(s.window_size),
                minimum_calls=s.minimum_calls,
                open_for=s.open_for,
                half_open_probes=s.half_open_probes,
                failure_on=upstream_failure,
                hooks=hooks,
                shared=self.breaker_state,
            ),
            bulkhead=Bulkhead(
                provider, max_concurrent=s.max_concurrent, max_waiting=s.max_waiting, hooks=hooks
            ),
        )

    def _quota(self, provider: str, limits: dict[str, int]) -> QuotaTracker:
        if self._hub is None:
            return UpstreamQuota(provider, limits=limits)
        shared = RedisUpstreamQuota(provider, self._hub, limits=limits)
        self._quotas.append(shared)
        return shared

    async def start(self) -> None:
        if self.breaker_state is not None:
            await self.breaker_state.start()
        if self._metrics is not None and not self._registered:
            self._metrics.register_collector(self.stats)
            self._metrics.register_collector(self.events)
            self._registered = True

    async def stop(self) -> None:
        """Close every client (they are forgotten: a restarted app builds new ones)."""
        clients, self._clients = list(self._clients.values()), {}
        quotas, self._quotas = self._quotas, []
        try:
            for client in clients:
                await client.aclose()
            for quota in quotas:
                await quota.aclose()
            if self.breaker_state is not None:
                await self.breaker_state.stop()
            if self._own_hub is not None:
                await self._own_hub.aclose()
        finally:
            if self._metrics is not None and self._registered:
                self._metrics.unregister_collector(self.stats)
                self._metrics.unregister_collector(self.events)
                self._registered = False
