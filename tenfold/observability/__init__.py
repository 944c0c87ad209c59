"""Logs, metrics and tracing for a tenfold application.

- ``configure_logging`` / ``reset_logging`` / ``get_logger`` / ``flush_logs``:
  structlog JSON lines (or a console) carrying the request id of the context.
- ``Metrics`` and ``metrics_route``: Prometheus RED metrics by route template,
  per application, multi-process aware.
- ``RequestContextMiddleware`` (request id, context) and ``TelemetryMiddleware``
  (metrics, access line), or ``ObservabilityMiddleware``: both in one layer.
- ``start_tracing`` / ``setup_tracing``: optional OpenTelemetry and Sentry.
"""

from tenfold._routes import UNMATCHED
from tenfold.observability._logging import configure_logging, flush_logs, get_logger, reset_logging
from tenfold.observability._metrics import Metrics, metrics_route
from tenfold.observability._middleware import (
    DEFAULT_SKIP_PATHS,
    ObservabilityMiddleware,
    RequestContextMiddleware,
    TelemetryMiddleware,
)
from tenfold.observability._tracing import (
    Tracing,
    report_exception,
    setup_tracing,
    start_tracing,
)

__all__ = [
    "DEFAULT_SKIP_PATHS",
    "UNMATCHED",
    "Metrics",
    "ObservabilityMiddleware",
    "RequestContextMiddleware",
    "TelemetryMiddleware",
    "Tracing",
    "configure_logging",
    "flush_logs",
    "get_logger",
    "metrics_route",
    "report_exception",
    "reset_logging",
    "setup_tracing",
    "start_tracing",
]
