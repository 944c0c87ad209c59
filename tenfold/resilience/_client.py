"""``ExternalClient``: an ``httpx.AsyncClient`` for one provider, behind a ``Policy``.

Each attempt (the ``Policy`` may retry) goes: quota reservation, request with
the current context as headers (``X-Request-ID``, ``X-Correlation-ID``,
``X-Causation-ID``, ``traceparent``; never the principal), then error mapping
(the classes live in ``_errors.py``):

DependencyUnavailable (tenfold._errors)
├── QuotaExhausted       the provider's quota would reject it; never sent
├── UpstreamUnreachable  connecting or sending failed (the httpx error is ``__cause__``)
├── UpstreamTimeout      httpx timed out (the httpx error is ``__cause__``)
└── UpstreamError        the provider answered 429 or 5xx (``response``, ``retry_after``)

Only the last three mean the provider is failing; ``upstream_failure`` is the
``CircuitBreaker(failure_on=...)`` predicate that says so, so a locally
refused request does not trip the breaker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tenfold._context import REQUEST_ID_HEADER, snapshot
from tenfold.resilience._errors import (
    QuotaExhausted,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from tenfold.resilience._fallback import Provider
from tenfold.resilience._policy import Policy
from tenfold.resilience._quota import QuotaTracker, parse_retry_after

__all__ = ["ClientStats", "ExternalClient", "upstream_failure"]


def upstream_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the provider itself is failing (for the breaker)."""
    return isinstance(exc, UpstreamError | UpstreamTimeout | UpstreamUnreachable)


class ClientStats(Collector):
    """Per-provider request counters and remaining quota, as a Prometheus collector.

    Exposed: ``<ns>_upstream_requests_total`` (provider, outcome: ok, error,
    timeout, unreachable, refused) and ``<ns>_upstream_quota_remaining``
    (provider, window).
    """

    def __init__(self, namespace: str = "tenfold") -> None:
        self._prefix = f"{namespace}_" if namespace else ""
        self.requests: dict[tuple[str, str], int] = {}
        self.quotas: dict[str, QuotaTracker] = {}

    def count(self, provider: str, outcome: str) -> None:
        key = (provider, outcome)
        self.requests[key] = self.requests.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            self._prefix + "upstream_requests",
            "Outbound requests by provider and outcome.",
            labels=("provider", "outcome"),
        )
        for key, value in list(self.requests.items()):
            requests.add_metric(key, value)
        yield requests
        remaining = GaugeMetricFamily(
            self._prefix + "upstream_quota_remaining",
            "Requests left in each window of a provider's quota.",
            labels=("provider", "window"),
        )
        for provider, quota in list(self.quotas.items()):
            for window, left in quota.remaining().items():
                remaining.add_metric((provider, window), float(left))
        yield remaining


class ExternalClient:
    """Calls to one provider; ``await client.get(url)`` returns a 2xx-4xx ``httpx.Response``.

    ``transport`` is handed to httpx (``httpx.MockTransport`` in unit tests);
    ``timeout`` is httpx's per-request timeout; ``clock`` (wall time) turns an
    HTTP-date ``Retry-After`` into seconds. Use it as an async context
    manager, or call ``aclose()``.
    """

    def __init__(
        self,
        provider: str,
        *,
        base_url: str = "",
        policy: Policy | None = None,
        quota: QuotaTracker | None = None,
        stats: ClientStats | None = None,
        timeout: float | httpx.Timeout = 10.0,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        request_id_header: str = "X-Request-ID",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.policy = policy or Policy()
        self.quota = quota
        self.stats = stats
        self.request_id_header = request_id_header
        self._clock = clock
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=headers, transport=transport
        )
        if stats is not None and quota is not None:
            stats.quotas[provider] = quota

    def __repr__(self) -> str:
        return f"ExternalClient({self.provider!r}, policy={self.policy!r}, quota={self.quota!r})"

    async def __aenter__(self) -> ExternalClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send through the policy; ``kwargs`` go to ``httpx.AsyncClient.request``."""
        return await self.policy.call(self._attempt, method, url, **kwargs)

    def as_provider(self) -> Provider[..., httpx.Response]:
        """This client as a ``FallbackChain`` provider: ``await chain.call("GET", url)``."""
        return Provider(self.provider, self._attempt, self.policy)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def _attempt(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.quota is not None:
            try:
                await self.quota.before_request()
            except QuotaExhausted:
                self._count("refused")
                raise
        response = await self._send(method, url, **kwargs)
        if response.status_code == 429 or response.status_code >= 500:
            self._count("error")
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            raise UpstreamError(self.provider, response=response, retry_after=retry_after)
        self._count("ok")
        return response

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        request = self._http.build_request(method, url, **kwargs)
        # The context travels as headers (request, correlation and causation ids, traceparent);
        # a header the caller set wins.
        for name, value in snapshot().to_headers().items():
            if name == REQUEST_ID_HEADER:
                name = self.request_id_header
            if name not in request.headers:
                request.headers[name] = value
        response: httpx.Response | None = None
        try:
            response = await self._http.send(request)
        except httpx.TimeoutException as exc:
            self._count("timeout")
            raise UpstreamTimeout(self.provider, request=request) from exc
        except httpx.TransportError as exc:
            self._count("unreachable")
            raise UpstreamUnreachable(self.provider, request=request) from exc
        finally:
            if self.quota is not None:
                status = response.status_code if response is not None else None
                headers = response.headers if response is not None else None
                # A shared quota learns through I/O: it has an awaitable ``arecord``.
                arecord = getattr(self.quota, "arecord", None)
                if arecord is not None:
                    await arecord(status, headers)
                else:
                    self.quota.record(status, headers)
        return response

    def _count(self, outcome: str) -> None:
        if self.stats is not None:
            self.stats.count(self.provider, outcome)
