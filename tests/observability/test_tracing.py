"""Optional tracing: off by default, spans when enabled, a named error when not installed."""

from __future__ import annotations

import sys

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tenfold import ConfigurationError, ObservabilitySettings
from tenfold.observability import setup_tracing


@pytest.fixture
def app(make_app):
    app = make_app()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("traced failure")

    return app


async def test_off_by_default(app) -> None:
    """With default settings nothing is instrumented."""
    tracing = setup_tracing(app, ObservabilitySettings())
    assert not tracing.otel
    assert not tracing.sentry
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)


async def test_otel_produces_request_and_query_spans(app, client_for) -> None:
    """Enabled, requests and SQL statements produce spans with the route template."""
    exporter = InMemorySpanExporter()
    settings = ObservabilitySettings(otel_enabled=True, service_name="svc")
    tracing = setup_tracing(app, settings, span_exporter=exporter)
    engine = create_async_engine("sqlite+aiosqlite://")
    try:
        tracing.instrument_engine(engine)
        client = client_for(app)
        assert (await client.get("/items/3")).status_code == 200
        assert (await client.get("/boom")).status_code == 500
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
    finally:
        await engine.dispose()
        await tracing.stop()
    spans = exporter.get_finished_spans()
    servers = {s.attributes.get("http.route"): s for s in spans if s.kind.name == "SERVER"}
    assert set(servers) == {"/items/{item_id}", "/boom"}
    assert servers["/boom"].status.status_code is StatusCode.ERROR
    assert servers["/items/{item_id}"].resource.attributes["service.name"] == "svc"
    assert any("select 1" in (s.attributes or {}).get("db.statement", "") for s in spans)


def test_missing_otel_packages_name_the_extra(app, monkeypatch: pytest.MonkeyPatch) -> None:
    """otel_enabled without the SDK installed fails with the setting and the pip extra."""
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(ConfigurationError) as info:
        setup_tracing(app, ObservabilitySettings(otel_enabled=True))
    assert info.value.setting == "TENFOLD_OBSERVABILITY__OTEL_ENABLED"
    assert "pip install 'tenfold[otel]'" in str(info.value)


def test_missing_sentry_names_the_extra(app, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Sentry DSN without sentry-sdk installed fails with the setting and the pip extra."""
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    settings = ObservabilitySettings(sentry_dsn=SecretStr("https://key@sentry.invalid/1"))
    with pytest.raises(ConfigurationError) as info:
        setup_tracing(app, settings)
    assert info.value.setting == "TENFOLD_OBSERVABILITY__SENTRY_DSN"
    assert "pip install 'tenfold[sentry]'" in str(info.value)
