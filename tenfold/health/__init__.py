"""Liveness, readiness and graceful shutdown.

- ``HealthRegistry``: capabilities register readiness checks (the database
  registers its primary and each replica); reports are cached and single-flight.
- ``Lifecycle`` and ``InFlightMiddleware``: draining state and in-flight count.
- ``health_router(registry, lifecycle)``: ``GET /health`` and ``GET /ready``.
"""

from tenfold.health._lifecycle import InFlightMiddleware, Lifecycle
from tenfold.health._registry import Check, HealthRegistry, HealthReport
from tenfold.health._routes import PROBE_PATHS, health_router

__all__ = [
    "PROBE_PATHS",
    "Check",
    "HealthRegistry",
    "HealthReport",
    "InFlightMiddleware",
    "Lifecycle",
    "health_router",
]
