"""``Database``: the data-layer component (named ``db``).

It owns one router for the main database (``TENFOLD_DB__URL`` and
``TENFOLD_DB__REPLICAS``) and one per shard (``TENFOLD_DB__SHARDS``), starts
and stops them, and registers their health checks and pool metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from tenfold._errors import ConfigurationError
from tenfold.db._engine import Endpoint
from tenfold.db._metrics import MetricsSink, PoolCollector, PoolStats, instrument_queries
from tenfold.db._pagination import Paginator
from tenfold.db._router import Router
from tenfold.db._session import TenfoldSession
from tenfold.db._settings import DatabaseSettings
from tenfold.db._sharding import ShardKey, Shards

__all__ = ["Database", "HealthSink"]


class HealthSink(Protocol):
    """What the database needs from ``tenfold.health.HealthRegistry``."""

    def register(
        self, name: str, check: Any, *, critical: bool = True, timeout: float | None = None
    ) -> None: ...


def _router(
    url: SecretStr,
    replicas: Sequence[SecretStr],
    settings: DatabaseSettings,
    *,
    prefix: str,
    setting: str,
    honour_tokens: bool,
) -> Router:
    primary = Endpoint(f"{prefix}primary", "primary", url, settings, setting=setting)
    replica_setting = "TENFOLD_DB__REPLICAS" if setting == "TENFOLD_DB__URL" else setting
    reps = [
        Endpoint(f"{prefix}replica{i}", "replica", r, settings, setting=replica_setting)
        for i, r in enumerate(replicas)
    ]
    name = prefix.rstrip(".") or "db"
    return Router(primary, reps, settings, honour_tokens=honour_tokens, name=name)


class Database:
    """Pools, routing, shards and health for the application's databases.

    Engines are built here (no network I/O; SQLite's directory is created);
    ``start()`` connects, with bounded backoff
    for primaries, and ``stop()`` disposes the pools. ``metrics`` and
    ``health`` are optional: with them, ``start()`` registers a pool collector
    and one health check per server (primaries critical, replicas not).
    Paginators sign cursors with ``settings.cursor_key`` unless
    ``cursor_secret`` is given.
    """

    name = "db"

    def __init__(
        self,
        settings: DatabaseSettings,
        *,
        metrics: MetricsSink | None = None,
        health: HealthSink | None = None,
        cursor_secret: str | bytes | SecretStr | None = None,
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        self._health = health
        self._cursor_secret = cursor_secret if cursor_secret is not None else settings.cursor_key
        sharded = bool(settings.shards)
        self.router = _router(
            settings.url,
            settings.replicas,
            settings,
            prefix="",
            setting="TENFOLD_DB__URL",
            honour_tokens=not sharded,
        )
        self.shards: Shards[Router] = Shards(
            [
                _router(
                    s.url,
                    s.replicas,
                    settings,
                    prefix=f"shard{i}.",
                    setting="TENFOLD_DB__SHARDS",
                    honour_tokens=False,
                )
                for i, s in enumerate(settings.shards)
            ]
        )
        self._collector: PoolCollector | None = None
        self._instrumented = False
        self._checks: list[str] = []

    def __repr__(self) -> str:
        return f"Database({self.router.primary.address!r}, shards={len(self.shards)})"

    @property
    def routers(self) -> list[Router]:
        return [self.router, *self.shards]

    @property
    def endpoints(self) -> list[Endpoint]:
        return [e for r in self.routers for e in r.endpoints]

    @property
    def engines(self) -> list[AsyncEngine]:
        """Every engine (for tracing instrumentation); they exist before ``start()``."""
        return [e.engine for e in self.endpoints]

    @property
    def engine(self) -> AsyncEngine:
        """The main primary's engine (migrations, ``metadata.create_all``)."""
        return self.router.primary.engine

    @property
    def is_sqlite(self) -> bool:
        return self.router.primary.is_sqlite

    async def start(self) -> None:
        """Connect every primary (bounded backoff) and check replicas; register probes."""
        self._register()
        try:
            for router in self.routers:
                await router.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the replica checkers and close every pool. Safe to call twice."""
        self._unregister()
        await asyncio.gather(*(r.stop() for r in self.routers))

    def session(self, *, readonly: bool = False) -> AbstractAsyncContextManager[TenfoldSession]:
        """``async with db.session() as s``: write on the primary, commit on success.

        ``readonly=True`` routes to a replica when one is healthy and caught up
        with the request's consistency token.
        """
        return self.router.session(readonly=readonly)

    def shard(self, key: ShardKey) -> Router:
        """The router of the shard that owns ``key`` (jump consistent hash)."""
        if not len(self.shards):
            raise ConfigurationError(
                "no shards are configured; set TENFOLD_DB__SHARDS", setting="TENFOLD_DB__SHARDS"
            )
        return self.shards.for_key(key)

    def paginator(self, *, sort: Sequence[Any], **options: Any) -> Paginator:
        """A ``Paginator`` signing cursors with ``TENFOLD_DB__CURSOR_SECRET``.

        Or with ``cursor_secret=`` given to the constructor, which wins.
        """
        return Paginator(self._cursor_secret, sort=sort, **options)

    async def check_replicas(self) -> None:
        """Run one replica check round on every router now."""
        await asyncio.gather(*(r.check_replicas() for r in self.routers if r.replicas))

    def pool_stats(self) -> dict[str, PoolStats]:
        return {e.name: e.pool_stats() for e in self.endpoints}

    def _register(self) -> None:
        if self._metrics is not None and self._collector is None:
            if not self._instrumented:
                for endpoint in self.endpoints:
                    instrument_queries(endpoint.engine, endpoint.role, self._metrics)
                self._instrumented = True
            namespace = getattr(self._metrics, "namespace", "tenfold") or "tenfold"
            self._collector = PoolCollector(lambda: self.endpoints, namespace=namespace)
            self._metrics.register_collector(self._collector)
        if self._health is not None and not self._checks:
            for router in self.routers:
                prefix = "db" if router is self.router else f"db.{router.name}"
                self._add_check(f"{prefix}.primary", router.primary_health, critical=True)
                for replica in router.replicas:
                    name = f"{prefix}.{replica.name.rsplit('.', 1)[-1]}"
                    self._add_check(name, router.replica_health(replica), critical=False)

    def _add_check(self, name: str, check: Any, *, critical: bool) -> None:
        if self._health is not None:
            self._health.register(name, check, critical=critical)
            self._checks.append(name)

    def _unregister(self) -> None:
        unregister_collector = getattr(self._metrics, "unregister_collector", None)
        if self._collector is not None and unregister_collector is not None:
            unregister_collector(self._collector)
            self._collector = None
        unregister = getattr(self._health, "unregister", None)
        if unregister is not None:
            for name in self._checks:
                unregister(name)
            self._checks.clear()
