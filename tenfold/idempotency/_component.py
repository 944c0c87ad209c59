"""The app's idempotency defaults and key store, from ``TENFOLD_IDEMPOTENCY__*``.

``IdempotentSession``, ``idempotent_session()`` and ``idempotency_key()``
given no configuration (or no store) take them from here, through
``app.state.tenfold.idempotency``; explicit arguments still win. The store
is made on first use, so an app that never keys a route in one opens no
Redis connection for it.
"""

from __future__ import annotations

from tenfold._errors import ConfigurationError
from tenfold._settings import RedisSettings
from tenfold.idempotency._session import IdempotencyConfig
from tenfold.idempotency._settings import IdempotencySettings
from tenfold.idempotency._stores import IdempotencyStore, MemoryStore, RedisStore
from tenfold.redis import RedisHub

__all__ = ["IdempotencyComponent"]


class IdempotencyComponent:
    """``config`` and ``store`` of an app (a tenfold Component named ``idempotency``).

    ``store`` replaces the one the settings describe; the component does not
    close a store it was given. ``hub`` is the process's ``RedisHub`` (the
    platform's); without one a Redis store makes its own on first use.
    """

    name = "idempotency"

    def __init__(
        self,
        settings: IdempotencySettings | None = None,
        redis: RedisSettings | None = None,
        *,
        store: IdempotencyStore | None = None,
        hub: RedisHub | None = None,
    ) -> None:
        self.settings = s = settings if settings is not None else IdempotencySettings()
        self.redis_settings = redis if redis is not None else RedisSettings()
        #: The configuration of routes that were not given one.
        self.config = IdempotencyConfig(header=s.header, ttl=s.ttl, lease=s.lease)
        kind = s.store
        if kind == "auto":
            kind = "redis" if self.redis_settings.enabled else "memory"
        if kind == "redis" and not self.redis_settings.enabled:
            raise ConfigurationError(
                "TENFOLD_IDEMPOTENCY__STORE=redis needs TENFOLD_REDIS__URL or "
                "TENFOLD_REDIS__CLUSTER_NODES",
                setting="TENFOLD_IDEMPOTENCY__STORE",
            )
        self.kind = kind if store is None else "custom"
        self._store = store
        self._hub = hub
        self._own_hub: RedisHub | None = None

    def __repr__(self) -> str:
        return f"<IdempotencyComponent store={self.kind} header={self.config.header!r}>"

    @property
    def store(self) -> IdempotencyStore:
        """The store of ``idempotency_key()`` routes that were not given one."""
        if self._store is None:
            if self.kind == "redis":
                hub = self._hub
                if hub is None:
                    hub = self._own_hub = RedisHub.from_settings(self.redis_settings)
                self._store = RedisStore(hub.client, prefix=self.settings.prefix)  # type: ignore[arg-type]
            else:
                self._store = MemoryStore()
        return self._store

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        hub, self._own_hub = self._own_hub, None
        if hub is not None:
            self._store = None
            await hub.aclose()
