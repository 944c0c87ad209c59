"""The Beer Olympics plan's presets: a TTL per cache namespace, rate limits, WebSocket limits.

The app applies them when it is built (``apps.tourney.main.settings_with_presets``)::

    settings = settings.model_copy(
        update={
            "cache": cache_settings(settings.cache),
            "realtime": realtime_settings(settings.realtime),
        }
    )
    app = create_app(settings, rate_limits=rate_limits(), extensions=[RealtimeExtension(), ...])

What an operator set still wins, so it is retuned without a release:
``TENFOLD_CACHE__NAMESPACES`` over ``CACHE_NAMESPACES`` per namespace, and
``TENFOLD_REALTIME__MAX_CONNECTIONS_PER_IP`` and
``TENFOLD_REALTIME__MESSAGES_PER_MINUTE`` over ``WS_CONNECTIONS_PER_IP`` and
``WS_MESSAGES_PER_MINUTE``. The realtime endpoint enforces those two: the
connection an address opens past its cap is refused (close 1008), and a
connection sending more frames a minute is closed (4003).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from tenfold.cache import CacheSettings, NamespacePolicy
from tenfold.ratelimit import IPNetwork, Policy, RateLimits, RateLimitSettings, Rule, by_user
from tenfold.realtime import RealtimeSettings

__all__ = [
    "API_LIMIT",
    "API_PREFIX",
    "CACHE_NAMESPACES",
    "MEDIA_PREFIX",
    "RATE_LIMITS",
    "UPLOAD_LIMIT",
    "WS_CONNECTIONS_PER_IP",
    "WS_MESSAGES_PER_MINUTE",
    "cache_settings",
    "rate_limit_policies",
    "rate_limits",
    "ratelimit_settings",
    "realtime_settings",
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
#: Requests a user (an address when anonymous) may make under API_PREFIX, and uploads.
API_LIMIT = "100/minute"
UPLOAD_LIMIT = "10/minute"

#: WebSocket connections one client address may hold open.
WS_CONNECTIONS_PER_IP = 5
#: Frames one WebSocket connection may send a minute. The page sends a subscribe frame
#: when it connects, then a ping every 25 s.
WS_MESSAGES_PER_MINUTE = 100


def cache_settings(base: CacheSettings | None = None) -> CacheSettings:
    """``base`` with ``CACHE_NAMESPACES`` added; a namespace ``base`` declares keeps its own."""
    base = base if base is not None else CacheSettings()
    return base.with_namespaces(**{**CACHE_NAMESPACES, **base.namespaces})


def realtime_settings(base: RealtimeSettings | None = None) -> RealtimeSettings:
    """``base`` with ``WS_CONNECTIONS_PER_IP`` and ``WS_MESSAGES_PER_MINUTE``, except where
    ``base`` was given a value of its own (by the environment or by its maker)."""
    base = base if base is not None else RealtimeSettings()
    preset = {
        "max_connections_per_ip": WS_CONNECTIONS_PER_IP,
        "messages_per_minute": WS_MESSAGES_PER_MINUTE,
    }
    # model_fields_set holds the fields read from TENFOLD_REALTIME__* (or passed in), not
    # those left at their default: a value equal to the default was still chosen.
    own = base.model_fields_set
    return base.model_copy(update={k: v for k, v in preset.items() if k not in own})


def ratelimit_settings(base: RateLimitSettings, *, shared: bool) -> RateLimitSettings:
    """``base`` in lease mode when the limits are ``shared`` between instances (on Redis),
    unless ``base`` chose its mode (``TENFOLD_RATELIMIT__MODE``).

    The plan's limits are per user per minute. In exact mode every request costs a round
    trip to Redis, about half the CPU of a cached leaderboard read; a lease of at most a
    twentieth of a limit's burst (5 of the API's 100) is spent locally instead, and an
    instance admits at most one lease over a limit. Small limits (logins) lease one token:
    exact. Embedded, the limits are in memory already and stay exact.
    """
    if not shared or "mode" in base.model_fields_set:
        return base
    return base.model_copy(update={"mode": "lease"})


def rate_limit_policies(
    trusted: Sequence[IPNetwork] = (), *, api: str = API_LIMIT, uploads: str = UPLOAD_LIMIT
) -> Mapping[str, Policy]:
    """The plan's policies, with client addresses read behind the ``trusted`` proxies.

    ``api`` (``API_LIMIT``) and ``media_upload`` (``UPLOAD_LIMIT``) count per
    user, and per address for anonymous clients.
    """
    per_user = by_user(trusted)
    return MappingProxyType(
        {
            "api": Policy("api", [Rule(api)], key=per_user),
            "media_upload": Policy("media_upload", [Rule(uploads)], key=per_user),
        }
    )


#: The policies for an app that faces clients directly (no proxy in front).
RATE_LIMITS: Mapping[str, Policy] = rate_limit_policies()


def rate_limits(policies: Mapping[str, Policy] = RATE_LIMITS) -> RateLimits:
    """What ``create_app(rate_limits=...)`` takes: ``api`` under ``API_PREFIX``, uploads too."""
    return RateLimits(
        prefixes={API_PREFIX: policies["api"], MEDIA_PREFIX: policies["media_upload"]}
    )
