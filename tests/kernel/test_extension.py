"""An extension defined in the test suite plugs in without touching tenfold's own files."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tenfold import ConfigurationError, Extension, Platform, Settings, create_app
from tenfold.cli import cli
from tenfold.db import Database
from tenfold.observability import ObservabilityMiddleware
from tenfold.ratelimit import RateLimitMiddleware
from tenfold.web import Slot

from .audit_ext import JOURNAL, AuditExtension, AuditLog, AuditMiddleware, AuditSettings

pytestmark = pytest.mark.usefixtures("clean_env")

HERE = Path(__file__).resolve().parent


async def test_settings_section_is_read_from_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """TENFOLD_AUDIT__* fill the extension's section; the built-in sections are still there."""
    monkeypatch.setenv("TENFOLD_AUDIT__SINK", "syslog")
    monkeypatch.setenv("TENFOLD_AUDIT__KEYS", '{"k1": "alice"}')
    platform = Platform.build(extensions=[AuditExtension()], configure_logs=False)
    section = platform.settings.section("audit")
    assert isinstance(section, AuditSettings)
    assert (section.sink, section.keys) == ("syslog", {"k1": "alice"})
    assert platform.settings.db.is_sqlite  # type: ignore[attr-defined]
    assert platform.get(AuditLog).settings is section


def test_bad_value_fails_at_build_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An invalid TENFOLD_AUDIT__ value is a ConfigurationError naming it, before any I/O."""
    monkeypatch.setenv("TENFOLD_AUDIT__MAX_EVENTS", "0")
    with pytest.raises(ConfigurationError) as info:
        Platform.build(extensions=[AuditExtension()], configure_logs=False)
    assert info.value.setting == "TENFOLD_AUDIT__MAX_EVENTS"


def test_given_settings_get_the_extension_section_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settings built without the audit section are completed from TENFOLD_AUDIT__*."""
    monkeypatch.setenv("TENFOLD_AUDIT__SINK", "file")
    given = Settings.load(port=9123)
    platform = Platform.build(given, extensions=[AuditExtension()], configure_logs=False)
    assert platform.settings.port == 9123
    assert platform.settings.section("audit").sink == "file"


async def test_component_starts_after_its_dependency_and_stops_before_it() -> None:
    """The audit log (requires db) starts after the database and stops before it."""
    JOURNAL.clear()
    async with Platform.open(extensions=[AuditExtension()], configure_logs=False) as platform:
        log = platform.get(AuditLog)
        assert log.started
        names = platform.components.names
        assert names.index("db") < names.index("audit")
        assert JOURNAL == ["audit.start"]
    assert JOURNAL == ["audit.start", "audit.stop"]
    assert not log.started


async def test_web_app_serves_route_check_metrics_and_slotted_middleware(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """create_app places the middleware in its slot and serves the route, check and metrics."""
    monkeypatch.setenv("TENFOLD_AUDIT__KEYS", '{"k1": "alice"}')
    monkeypatch.setenv("TENFOLD_RATELIMIT__DEFAULT", "100/minute")
    monkeypatch.setenv("TENFOLD_RATELIMIT__KEY", "user")
    app = create_app(extensions=[AuditExtension()], configure_logs=False)
    classes = [m.cls for m in app.user_middleware]
    # Outermost first: request context ... authentication (audit) ... rate limit.
    assert classes.index(ObservabilityMiddleware) < classes.index(AuditMiddleware)
    assert classes.index(AuditMiddleware) < classes.index(RateLimitMiddleware)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            seen = await client.get("/audit", headers={"X-Audit-Key": "k1"})
            assert seen.status_code == 200
            assert seen.json()["events"] == [["GET", "/audit", "alice"]]
            # The principal it resolved is what the limiter counted (key=user).
            assert seen.headers["ratelimit-remaining"] == "99"
            anon = await client.get("/audit")
            assert anon.headers["ratelimit-remaining"] == "99"  # another key: the address
            ready = (await client.get("/ready")).json()
            assert ready["checks"]["audit.sink"] == "ok"
            metrics = (await client.get("/metrics")).text
            # Two /audit requests, /ready and this /metrics request itself.
            assert "tenfold_audit_events_total 4.0" in metrics


async def test_failing_check_degrades_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension's non-critical check failing makes /ready degraded, not 503."""
    monkeypatch.setenv("TENFOLD_AUDIT__HEALTHY", "false")
    monkeypatch.setenv("TENFOLD_HEALTH__TOKEN", "ops-token-for-details")
    app = create_app(extensions=[AuditExtension()], configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ready = await client.get(
                "/ready", headers={"Authorization": "Bearer ops-token-for-details"}
            )
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert "unreachable" in ready.json()["checks"]["audit.sink"]["error"]
    assert ready.json()["checks"]["audit.sink"]["critical"] is False


def test_cli_command_runs_with_the_platform_started(clean_env: Path) -> None:
    """`tenfold --app ... audit` finds the extension's command and runs it on a started platform."""
    runner = CliRunner()
    app = "kernel.audit_app:make_app()"
    listed = runner.invoke(cli, ["--app", app, "--help"], catch_exceptions=False)
    assert "audit" in listed.output
    result = runner.invoke(
        cli,
        ["--app", app, "audit", "--json"],
        env={"TENFOLD_AUDIT__SINK": "kafka"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"sink": "kafka", "started": True}
    docs = runner.invoke(cli, ["--app", app, "config-docs"], catch_exceptions=False)
    assert "`TENFOLD_AUDIT__MAX_EVENTS`" in docs.output
    assert "`TENFOLD_DB__URL`" in docs.output
    bad = runner.invoke(cli, ["--app", app, "audit"], env={"TENFOLD_AUDIT__MAX_EVENTS": "x"})
    assert bad.exit_code == 2
    assert "TENFOLD_AUDIT__MAX_EVENTS" in bad.output
    # `run` reads the app's settings (its extensions' sections too) before serving.
    env = {"TENFOLD_AUDIT__MAX_EVENTS": "x"}
    served = runner.invoke(cli, ["run", "--app", app, "--app-dir", str(HERE.parent)], env=env)
    assert served.exit_code == 2
    assert "TENFOLD_AUDIT__MAX_EVENTS" in served.output


def test_check_reports_the_extension_checks(clean_env: Path) -> None:
    """`tenfold --app ... check` opens the app's platform: its extensions' checks are reported."""
    runner = CliRunner()
    app = "kernel.audit_app:make_app()"
    ok = runner.invoke(cli, ["--app", app, "check"], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    assert "ok   audit.sink (not critical): " in ok.output
    assert "ok   db.primary" in ok.output
    failing = runner.invoke(cli, ["--app", app, "check"], env={"TENFOLD_AUDIT__HEALTHY": "false"})
    assert failing.exit_code == 1  # strict: a non-critical failure fails the check too
    assert "FAIL audit.sink (not critical): " in failing.output


def test_builtin_cli_without_app_has_no_audit() -> None:
    """Without --app the built-in extensions' commands are offered, and only those."""
    result = CliRunner().invoke(cli, ["--help"], catch_exceptions=False)
    assert " db " in result.output
    assert " audit " not in result.output


def test_requirement_missing_is_named() -> None:
    """An extension whose requirement is absent fails the build, naming what to add."""
    with pytest.raises(ConfigurationError, match=r"'audit' requires \['db'\]"):
        Platform.build(extensions=[AuditExtension()], builtins=False, configure_logs=False)


def test_extension_replaces_a_builtin_of_the_same_name() -> None:
    """An app's extension named like a built-in takes its place (and its section)."""

    class NoDb(Extension):
        name = "db"

    platform = Platform.build(extensions=[NoDb()], configure_logs=False)
    assert platform.find(Database) is None
    assert platform.extensions[0].name == "db"
    with pytest.raises(ConfigurationError, match="no section 'db'"):
        platform.settings.section("db")


def test_dependency_cycle_is_refused() -> None:
    """Extensions that require each other are a ConfigurationError naming the cycle."""

    class A(Extension):
        name = "a"
        requires = ("b",)

    class B(Extension):
        name = "b"
        requires = ("a",)

    with pytest.raises(ConfigurationError, match="cycle"):
        Platform.build(extensions=[A(), B()], builtins=False, configure_logs=False)


def test_section_name_taken_by_the_core_is_refused() -> None:
    """An extension cannot name its section like a kernel section (redis, app...)."""

    class Redis(Extension):
        name = "redis"
        settings_model = AuditSettings

    with pytest.raises(ConfigurationError, match="taken"):
        Platform.build(extensions=[Redis()], configure_logs=False)


def test_middleware_needs_a_slot() -> None:
    """Declaring middleware without a Slot is a TypeError at build time."""

    class Loose(Extension):
        name = "loose"

        def build(self, build):  # type: ignore[no-untyped-def]
            build.middleware("somewhere", AuditMiddleware)

    with pytest.raises(TypeError, match="Slot"):
        Platform.build(extensions=[Loose()], configure_logs=False)


def test_slots_are_ordered_as_declared() -> None:
    """The slot order is request context < http < problem < in-flight < ... < app."""
    assert list(Slot) == sorted(Slot)
    assert [s.name for s in Slot] == [
        "REQUEST_CONTEXT",
        "HTTP",
        "PROBLEM",
        "IN_FLIGHT",
        "AUTHENTICATION",
        "CONSISTENCY",
        "RATE_LIMIT",
        "HTTP_CACHE",
        "APPLICATION",
    ]
