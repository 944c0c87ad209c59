"""Optional tracing: OpenTelemetry (``tenfold[otel]``) and Sentry (``tenfold[sentry]``).

Both are off by default. Turning one on without its packages installed fails
at startup with a ``ConfigurationError`` naming the setting and the extra.
The tracer provider is tenfold's own (passed to each instrumentation), not the
process-global one, so enabling tracing for one app does not change others.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI

from tenfold._context import current_request_id
from tenfold._errors import ConfigurationError
from tenfold._settings import ObservabilitySettings
from tenfold.observability._logging import get_logger

__all__ = ["Tracing", "report_exception", "setup_tracing", "start_tracing"]

_OTEL_SETTING = "TENFOLD_OBSERVABILITY__OTEL_ENABLED"
_OTLP_SETTING = "TENFOLD_OBSERVABILITY__OTEL_ENDPOINT"
_SENTRY_SETTING = "TENFOLD_OBSERVABILITY__SENTRY_DSN"
_EXCLUDED_URLS = "/health,/ready,/metrics"

_log = get_logger("tenfold.tracing")


class Tracing:
    """What ``setup_tracing`` switched on; a component whose ``stop`` flushes spans."""

    name = "tracing"

    def __init__(self, settings: ObservabilitySettings) -> None:
        self.settings = settings
        self.tracer_provider: Any = None
        self.sentry = False
        self._httpx: Any = None

    def __repr__(self) -> str:
        return f"Tracing(otel={self.tracer_provider is not None}, sentry={self.sentry})"

    @property
    def otel(self) -> bool:
        return self.tracer_provider is not None

    def instrument_engine(self, engine: Any) -> None:
        """Trace the statements of a SQLAlchemy (async) engine created after setup."""
        if self.tracer_provider is None:
            return
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeterProvider

        sync_engine = getattr(engine, "sync_engine", engine)
        meter = NoOpMeterProvider().get_meter("tenfold")
        # EngineTracer directly: SQLAlchemyInstrumentor().instrument() would also
        # patch sqlalchemy.create_engine for the whole process.
        EngineTracer(
            self.tracer_provider.get_tracer("tenfold.db"),
            sync_engine,
            meter.create_up_down_counter("db.client.connections.usage"),
        )

    def instrument_app(self, app: FastAPI) -> None:
        """Trace the requests ``app`` serves (probes and scrapes excluded)."""
        if self.tracer_provider is None:
            return
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=self.tracer_provider, excluded_urls=_EXCLUDED_URLS
        )

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        """Flush pending spans and undo the process-wide httpx patch."""
        if self._httpx is not None:
            self._httpx.uninstrument()
            self._httpx = None
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()


def start_tracing(settings: ObservabilitySettings, *, span_exporter: Any = None) -> Tracing:
    """Switch on what ``settings`` asks for; without ``otel_enabled``/``sentry_dsn``, nothing.

    This makes the tracer provider (and instruments httpx) for a process; an app
    adds its server spans with ``Tracing.instrument_app``, the database its
    statements with ``Tracing.instrument_engine``. ``span_exporter`` replaces
    the configured exporter and exports each span as it ends (tests pass
    OpenTelemetry's ``InMemorySpanExporter``).
    """
    tracing = Tracing(settings)
    if settings.otel_enabled:
        _setup_otel(tracing, settings, span_exporter)
    if settings.sentry_dsn is not None:
        _setup_sentry(tracing, settings)
    return tracing


def setup_tracing(
    app: FastAPI,
    settings: ObservabilitySettings,
    engines: Iterable[Any] = (),
    *,
    span_exporter: Any = None,
) -> Tracing:
    """``start_tracing``, then trace ``app``'s requests and ``engines``' statements."""
    tracing = start_tracing(settings, span_exporter=span_exporter)
    tracing.instrument_app(app)
    for engine in engines:
        tracing.instrument_engine(engine)
    return tracing


def report_exception(exc: BaseException) -> None:
    """Hand an unhandled exception to Sentry and the current span, if they are on."""
    sentry = sys.modules.get("sentry_sdk")
    if sentry is not None:
        sentry.capture_exception(exc)
    trace = sys.modules.get("opentelemetry.trace")
    if trace is not None:
        span = trace.get_current_span()
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))


def _setup_otel(tracing: Tracing, settings: ObservabilitySettings, span_exporter: Any) -> None:
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor  # noqa: F401
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer  # noqa: F401
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise ConfigurationError(
            f"{_OTEL_SETTING}=true needs the OpenTelemetry packages "
            f"(missing {exc.name}): pip install 'tenfold[otel]'",
            setting=_OTEL_SETTING,
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    tracing.tracer_provider = provider
    httpx_instrumentor = HTTPXClientInstrumentor()
    if not httpx_instrumentor.is_instrumented_by_opentelemetry:
        httpx_instrumentor.instrument(tracer_provider=provider)
        tracing._httpx = httpx_instrumentor


def _exporter(settings: ObservabilitySettings) -> Any:
    if settings.otel_endpoint is None:
        return _LogSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigurationError(
            f"{_OTLP_SETTING} needs the OTLP exporter: "
            "pip install opentelemetry-exporter-otlp-proto-http",
            setting=_OTLP_SETTING,
        ) from exc
    return OTLPSpanExporter(endpoint=settings.otel_endpoint)


def _setup_sentry(tracing: Tracing, settings: ObservabilitySettings) -> None:
    try:
        import sentry_sdk
    except ImportError as exc:
        raise ConfigurationError(
            f"{_SENTRY_SETTING} is set but sentry-sdk is not installed: "
            "pip install 'tenfold[sentry]'",
            setting=_SENTRY_SETTING,
        ) from exc
    assert settings.sentry_dsn is not None
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        server_name=settings.service_name,
        send_default_pii=False,
        before_send=_tag_request_id,
    )
    tracing.sentry = True


def _tag_request_id(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    request_id = current_request_id()
    if request_id is not None:
        event.setdefault("tags", {})["request_id"] = request_id
    return event


class _LogSpanExporter:
    """With no OTLP endpoint, each finished span becomes a log line."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        for span in spans:
            ctx = span.get_span_context()
            _log.info(
                "span",
                name=span.name,
                trace_id=f"{ctx.trace_id:032x}",
                span_id=f"{ctx.span_id:016x}",
                parent_id=f"{span.parent.span_id:016x}" if span.parent else None,
                duration_ms=round((span.end_time - span.start_time) / 1e6, 3),
                status=span.status.status_code.name,
                attributes=dict(span.attributes or {}),
            )
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
