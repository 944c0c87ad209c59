"""The Beer Olympics plan's presets: a TTL per cache namespace, and rate limits.

The app applies them when it is built::

    settings = Settings.load()
    settings = settings.model_copy(update={"cache": cache_settings(settings.cache)})
    app = create_app(settings, rate_limits=rate_limits())

``TENFOLD_CACHE__NAMESPACES`` still wins over ``CACHE_NAMESPACES``, so an
operator retunes one namespace without a release. WebSocket handlers count
each message against ``RATE_LIMITS["ws_messages"]`` and admit at most
``WS_CONNECTIONS_PER_IP`` connections per address with
``tenfold.ratelimit.ConnectionLimiter`` (docs/ratelimit.md shows the handler).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from tenfold.cache import CacheSettings, NamespacePolicy
from tenfold.ratelimit import IPNetwork, Policy, RateLimits, Rule, by_ip, by_user

__all__ = [
    "API_PREFIX",
    "CACHE_NAMESPACES",
    "MEDIA_PREFIX",
    "RATE_LIMITS",
    "WS_CONNECTIONS_PER_IP",
    "cache_settings",
    "rate_limit_policies",
    "rate_limits",
]

#: The plan's cache strategy, by namespace (the first part of every cache key).
CACHE_NAMESPACES: Mapping[str, NamespacePolicy] = MappingProxyType(
    {
        # No stale window, whatever TENFOLD_CACHE__STALE_TTL says: an expired session
        # must never be served.
        "session": NamespacePolicy(ttl=30 * 60, stale_ttl=0),
        "tournament": NamespacePolicy(ttl=5 * 60, stale_ttl=60),
        "leaderboard": NamespacePolicy(ttl=5, stale_ttl=5),
        "profile": NamespacePolicy(ttl=60 * 60, stale_ttl=5 * 60),
        # Match results never change once recorded. Entries without expiry need a cache
        # Redis with maxmemory-policy allkeys-lru, or they are never evicted there.
        "immutable": NamespacePolicy(ttl=None),
    }
)

#: Where the API and its media uploads are served; uploads count against both limits.
API_PREFIX = "/api"
MEDIA_PREFIX = "/api/media"

#: WebSocket connections one client address may hold open.
WS_CONNECTIONS_PER_IP = 5


def cache_settings(base: CacheSettings | None = None) -> CacheSettings:
    """``base`` with ``CACHE_NAMESPACES`` added; a namespace ``base`` declares keeps its own."""
    base = base if base is not None else CacheSettings()
    return base.with_namespaces(**{**CACHE_NAMESPACES, **base.namespaces})


def rate_limit_policies(
    trusted: Sequence[IPNetwork] = (),
    *,
    api: str = "100/minute",
    uploads: str = "10/minute",
    ws_messages: str = "100/minute",
) -> Mapping[str, Policy]:
    """The plan's policies, with client addresses read behind the ``trusted`` proxies.

    ``api`` (100/minute) and ``media_upload`` (10/minute) count per user, and
    per address for anonymous clients; ``ws_messages`` (100/minute) counts
    WebSocket messages per address.
    """
    per_user, per_ip = by_user(trusted), by_ip(trusted)
    return MappingProxyType(
        {
            "api": Policy("api", [Rule(api)], key=per_user),
            "media_upload": Policy("media_upload", [Rule(uploads)], key=per_user),
            "ws_messages": Policy("ws_messages", [Rule(ws_messages)], key=per_ip),
        }
    )


#: The policies for an app that faces clients directly (no proxy in front).
RATE_LIMITS: Mapping[str, Policy] = rate_limit_policies()


def rate_limits(policies: Mapping[str, Policy] = RATE_LIMITS) -> RateLimits:
    """What ``create_app(rate_limits=...)`` takes: ``api`` under ``API_PREFIX``, uploads too."""
    return RateLimits(
        prefixes={API_PREFIX: policies["api"], MEDIA_PREFIX: policies["media_upload"]}
    )
