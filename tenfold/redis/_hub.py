"""``RedisHub``: one process's Redis, shared by every capability that needs it.

    hub.client      one redis-py client (standalone or Cluster), one connection pool
    hub.slots       one bound on the commands in flight across every user
    hub.pubsub      one multiplexed pub/sub connection (``PubSub``)
    hub.scripts     Lua calls made in one loop iteration coalesced into one pipeline

The cache, the rate limiter, shared breaker state, upstream quotas and the
idempotency store all use the platform's hub, so a process holds one pool of
command connections (grown to its concurrency, never more than
``max_connections``) and one pub/sub connection, however many capabilities
listen. Nothing connects until first used, and ``start()`` never fails
because Redis is down: each capability decides what an outage means for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tenfold._backoff import Backoff
from tenfold._errors import ConfigurationError
from tenfold._settings import RedisSettings
from tenfold.redis._clients import (
    REDIS_ERRORS,
    Slots,
    cluster_client,
    standalone_client,
    unavailable,
)
from tenfold.redis._pubsub import RECONNECT, PubSub

if TYPE_CHECKING:
    from tenfold.redis._batch import ScriptBatcher

__all__ = ["HUB_OPTIONS", "RedisHub", "split_hub_options"]

#: The keyword arguments of ``RedisHub.from_url``/``from_cluster``.
HUB_OPTIONS = frozenset(
    {
        "socket_timeout",
        "connect_timeout",
        "max_connections",
        "pool_timeout",
        "health_interval",
        "reconnect",
        "client_name",
    }
)


def default_client_name() -> str:
    """What a hub's connections are called in ``CLIENT LIST``: ``tenfold-<pid>``."""
    return f"tenfold-{os.getpid()}"


def split_hub_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (those for the hub, the rest): for constructors that make their own hub.

    ``reconnect_backoff`` (a cap in seconds) becomes the hub's ``reconnect`` backoff.
    """
    options = dict(options)
    cap = options.pop("reconnect_backoff", None)
    if cap is not None:
        options["reconnect"] = Backoff(base=min(0.05, cap), multiplier=2.0, max=cap)
    hub = {k: v for k, v in options.items() if k in HUB_OPTIONS}
    return hub, {k: v for k, v in options.items() if k not in HUB_OPTIONS}


class RedisHub:
    """The Redis of one process (a tenfold Component named ``redis``).

    Build it with ``from_url``, ``from_cluster`` or ``from_settings``; the
    platform builds one from ``TENFOLD_REDIS__*`` (``platform.get(RedisHub)``).
    ``max_in_flight`` bounds the commands in flight (callers beyond it wait up
    to ``pool_timeout`` seconds, then get ``RedisUnavailable``);
    ``health_interval`` is the pub/sub connection's silence before a PING and
    ``reconnect`` its wait between reconnects.
    """

    name = "redis"

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        pubsub_options: dict[str, Any],
        max_in_flight: int = 64,
        pool_timeout: float = 0.25,
        health_interval: float = 1.0,
        reconnect: Backoff | None = None,
        owns_client: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self.kind = "redis-cluster" if self.cluster else "redis"
        self.slots = Slots(max_in_flight, pool_timeout)
        self._owns_client = owns_client
        self._rng = rng or random.Random()
        self._pubsub_options = dict(pubsub_options)
        # redis-py 8.1's async RedisCluster breaks connections when several commands race
        # its lazy first initialize(); so the first caller initializes, under a lock.
        self.initialized = not self.cluster
        self._init_lock = asyncio.Lock()
        self.pubsub = PubSub(
            self._pubsub_client,
            health_interval=health_interval,
            backoff=reconnect or RECONNECT,
            rng=self._rng,
        )
        self._scripts: ScriptBatcher | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<RedisHub {self.kind} {self.slots!r} {self.pubsub!r}>"

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 0.25,
        connect_timeout: float | None = None,
        max_connections: int = 64,
        pool_timeout: float | None = None,
        health_interval: float = 1.0,
        reconnect: Backoff | None = None,
        client_name: str | None = None,
    ) -> RedisHub:
        """The hub of the standalone server at ``url`` (redis://, rediss://, unix://).

        ``connect_timeout`` bounds opening a connection (None: ``socket_timeout``), so a
        Redis that takes no connections costs a command no more than one that is slow.
        ``client_name`` names every connection (``CLIENT LIST``); default ``tenfold-<pid>``.
        """
        name = client_name or default_client_name()
        connect_timeout = socket_timeout if connect_timeout is None else connect_timeout
        client = standalone_client(url, socket_timeout, connect_timeout, max_connections)
        client.connection_pool.connection_kwargs["client_name"] = name
        return cls(
            client,
            pubsub_options={
                "url": url,
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": connect_timeout,
                "client_name": name,
            },
            max_in_flight=max_connections,
            pool_timeout=socket_timeout if pool_timeout is None else pool_timeout,
            health_interval=health_interval,
            reconnect=reconnect,
        )

    @classmethod
    def from_cluster(
        cls,
        nodes: Sequence[str],
        *,
        socket_timeout: float = 0.25,
        connect_timeout: float | None = None,
        max_connections: int = 64,
        pool_timeout: float | None = None,
        health_interval: float = 1.0,
        reconnect: Backoff | None = None,
        client_name: str | None = None,
    ) -> RedisHub:
        """The hub of the Cluster reachable through ``nodes`` (``host:port``); the pool bound
        ``max_connections`` is per node, the in-flight bound for the whole client."""
        name = client_name or default_client_name()
        connect_timeout = socket_timeout if connect_timeout is None else connect_timeout
        return cls(
            cluster_client(nodes, socket_timeout, connect_timeout, max_connections, name),
            pubsub_options={
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": connect_timeout,
                "client_name": name,
            },
            max_in_flight=max_connections,
            pool_timeout=socket_timeout if pool_timeout is None else pool_timeout,
            health_interval=health_interval,
            reconnect=reconnect,
        )

    @classmethod
    def from_settings(cls, settings: RedisSettings, **options: Any) -> RedisHub:
        """The hub ``TENFOLD_REDIS__*`` describes (Cluster when cluster_nodes is set)."""
        common: dict[str, Any] = {
            "socket_timeout": settings.socket_timeout,
            "connect_timeout": settings.connect_timeout,
            "max_connections": settings.max_connections,
            "health_interval": settings.health_interval,
            "reconnect": Backoff(
                base=min(0.05, settings.reconnect_backoff),
                multiplier=2.0,
                max=settings.reconnect_backoff,
            ),
            **options,
        }
        if settings.cluster_nodes:
            return cls.from_cluster(settings.cluster_nodes, **common)
        if settings.url is None:
            raise ConfigurationError(
                "a Redis hub needs TENFOLD_REDIS__URL or TENFOLD_REDIS__CLUSTER_NODES",
                setting="TENFOLD_REDIS__URL",
            )
        return cls.from_url(settings.url.get_secret_value(), **common)

    # -- commands -------------------------------------------------------------

    async def initialize(self) -> None:
        """Load a Cluster's slot map once (standalone: nothing to do)."""
        if self.initialized:
            return
        async with self._init_lock:
            if not self.initialized:
                await self.client.initialize()  # type: ignore[union-attr]
                self.initialized = True

    @property
    def scripts(self) -> ScriptBatcher:
        """The script batcher over this hub (made on first use)."""
        if self._scripts is None:
            from tenfold.redis._batch import ScriptBatcher

            self._scripts = ScriptBatcher(self)
        return self._scripts

    async def publish(self, channel: str, data: bytes) -> int:
        """PUBLISH ``data`` on ``channel`` (a classic PUBLISH reaches every Cluster node)."""
        if not self.slots.take():
            await self.slots.wait("PUBLISH")
        try:
            await self.initialize()
            return int(await self.client.publish(channel, data))
        except REDIS_ERRORS as exc:
            raise unavailable("PUBLISH", exc) from exc
        finally:
            self.slots.give()

    async def ping(self) -> None:
        """PING (every primary of a Cluster); ``RedisUnavailable`` if it fails."""
        try:
            await self.initialize()
            if self.cluster:
                await self.client.ping(target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]
            else:
                await self.client.ping()
        except REDIS_ERRORS as exc:
            raise unavailable("PING", exc) from exc

    async def check(self) -> dict[str, Any]:
        """The readiness check ``redis``: it answers; the pub/sub connection's state."""
        await self.ping()
        return {"kind": self.kind, "pubsub": "live" if self.pubsub.connected else "idle"}

    async def _pubsub_client(self) -> aioredis.Redis:
        # No retries: a reconnect would resubscribe silently and hide the messages lost meanwhile.
        options = {**self._pubsub_options, "retry": Retry(NoBackoff(), 0)}
        if not self.cluster:
            return aioredis.Redis.from_url(options.pop("url"), **options)
        await self.initialize()
        node = self._rng.choice(self.client.get_primaries())  # type: ignore[union-attr]
        return aioredis.Redis(host=node.host, port=node.port, **options)

    # -- lifetime -------------------------------------------------------------

    async def start(self) -> None:
        """Nothing connects until used: a Redis outage at start is each capability's to judge."""
        self._closed = False

    async def stop(self) -> None:
        """Close the pub/sub connection and, if this hub made it, the command pool."""
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.pubsub.aclose()
        if self._scripts is not None:
            await self._scripts.drain()
        if self._owns_client:
            # A connection that fails while closing leaves nothing to recover or report.
            with contextlib.suppress(*REDIS_ERRORS):
                await self.client.aclose()
            self.initialized = not self.cluster  # a restarted hub loads the slot map again
