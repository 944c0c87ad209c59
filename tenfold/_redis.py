"""What every tenfold Redis client shares: driver errors, timeouts, Cluster seeds, settings.

The cache, the rate limiter and the idempotency store each own their client
(their scripts and bounds differ), but they connect the same way: the same
socket timeouts, one immediate retry only when a pooled connection broke,
Cluster hash tags read the same way, and ``TENFOLD_REDIS__*`` turned into a
standalone or Cluster client by one rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from tenfold._errors import ConfigurationError
from tenfold._settings import RedisSettings

__all__ = [
    "REDIS_ERRORS",
    "RETRY_ONCE",
    "cluster_client",
    "cluster_seeds",
    "connection_options",
    "from_settings",
    "hash_tag",
    "standalone_client",
]

T = TypeVar("T")

#: What a redis-py call raises when Redis is unreachable, slow or refusing.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)
#: One retry, at once, only when the connection broke (a pooled socket a restarted Redis
#: closed); never on a timeout, which would double the time a slow Redis costs a request.
RETRY_ONCE = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def connection_options(
    socket_timeout: float, connect_timeout: float, max_connections: int
) -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url`` / ``RedisCluster``."""
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "max_connections": max_connections,
        "retry": RETRY_ONCE,
    }


def standalone_client(
    url: str, socket_timeout: float, connect_timeout: float, max_connections: int
) -> aioredis.Redis:
    """A client of the standalone server at ``url`` with the shared connection options."""
    return aioredis.Redis.from_url(
        url, **connection_options(socket_timeout, connect_timeout, max_connections)
    )


def cluster_client(
    nodes: Sequence[str], socket_timeout: float, connect_timeout: float, max_connections: int
) -> RedisCluster:
    """A client of the Cluster reachable through ``nodes`` (``host:port``), same options."""
    return RedisCluster(
        startup_nodes=cluster_seeds(nodes),
        **connection_options(socket_timeout, connect_timeout, max_connections),
    )


def cluster_seeds(nodes: Sequence[str]) -> list[ClusterNode]:
    """``["host:port", ...]`` as Cluster startup nodes."""
    return [ClusterNode(h, int(p)) for h, _, p in (n.rpartition(":") for n in nodes)]


def hash_tag(name: str) -> str | None:
    """The ``{...}`` hash tag Redis Cluster hashes for ``name``, or ``None`` if it has none."""
    start = name.find("{")
    if start == -1:
        return None
    end = name.find("}", start + 1)
    if end <= start + 1:
        return None
    return name[start + 1 : end]


def from_settings(
    settings: RedisSettings,
    *,
    what: str,
    from_url: Callable[..., T],
    from_cluster: Callable[..., T],
    **options: Any,
) -> T:
    """Build ``what`` from ``TENFOLD_REDIS__*``: Cluster when cluster_nodes is set."""
    common: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "connect_timeout": settings.connect_timeout,
        "max_connections": settings.max_connections,
    }
    if settings.cluster_nodes:
        return from_cluster(settings.cluster_nodes, **common, **options)
    if settings.url is None:
        raise ConfigurationError(
            f"{what} needs TENFOLD_REDIS__URL or TENFOLD_REDIS__CLUSTER_NODES",
            setting="TENFOLD_REDIS__URL",
        )
    return from_url(settings.url.get_secret_value(), **common, **options)
