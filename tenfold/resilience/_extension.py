"""The ``upstream`` extension: outbound clients with policies from ``TENFOLD_UPSTREAM__*``."""

from __future__ import annotations

from tenfold._extension import Build, Extension
from tenfold.resilience._errors import PROBLEMS
from tenfold.resilience._registry import UpstreamRegistry
from tenfold.resilience._settings import UpstreamSettings

__all__ = ["UpstreamExtension"]


class UpstreamExtension(Extension):
    """``platform.get(UpstreamRegistry)`` (also ``platform.upstreams``) and
    ``platform.upstream(name, base_url=...)``: an ``ExternalClient`` per provider,
    closed at shutdown; breakers and quotas shared through Redis when it is set."""

    name = "upstream"
    settings_model = UpstreamSettings

    def build(self, build: Build) -> None:
        build.problems(PROBLEMS)
        registry = UpstreamRegistry(
            build.section, metrics=build.metrics, redis=build.settings.redis, hub=build.redis
        )
        build.provide(registry, name="upstreams")
        build.expose("upstream", registry.client)
        build.component(registry)
