"""The ``idempotency`` extension: defaults and key store from ``TENFOLD_IDEMPOTENCY__*``."""

from __future__ import annotations

from tenfold._extension import Build, Extension
from tenfold.idempotency._component import IdempotencyComponent
from tenfold.idempotency._errors import PROBLEMS
from tenfold.idempotency._openapi import document_keys
from tenfold.idempotency._settings import IdempotencySettings

__all__ = ["IdempotencyExtension"]


class IdempotencyExtension(Extension):
    """``platform.get(IdempotencyComponent)`` (also ``platform.idempotency``): the header,
    TTLs and the store that ``IdempotentSession`` and ``idempotency_key()`` use by default."""

    name = "idempotency"
    settings_model = IdempotencySettings

    def build(self, build: Build) -> None:
        build.problems(PROBLEMS)
        component = IdempotencyComponent(build.section, build.settings.redis, hub=build.redis)
        build.provide(component, name="idempotency")
        build.component(component)
        build.openapi(document_keys(lambda: component.config))
