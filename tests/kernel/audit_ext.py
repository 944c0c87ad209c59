"""A capability defined entirely in the test suite: an audit log, as an extension.

It declares everything an extension can: a settings section (``TENFOLD_AUDIT__*``),
a component that needs the database (so it starts after it and stops before it),
a readiness check, a Prometheus collector, middleware in the authentication slot,
a route and a CLI command. Nothing in ``tenfold/`` knows it exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import click
import sqlalchemy as sa
from fastapi import APIRouter
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from pydantic import Field, field_validator
from pydantic_settings import NoDecode
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from tenfold import Build, Extension, Platform, Principal, SettingsSection, Use, current_principal
from tenfold.cli import with_platform
from tenfold.db import Database
from tenfold.web import AuthenticationMiddleware, Slot

#: What every AuditLog did, in order, across the test session (start/stop order checks).
JOURNAL: list[str] = []


class AuditSettings(SettingsSection):
    """The audit log (`TENFOLD_AUDIT__*`)."""

    sink: str = Field("memory", description="Where events go.")
    max_events: int = Field(100, ge=1, description="Events kept.")
    keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description='API key -> principal id (JSON: {"k1": "alice"}).'
    )
    healthy: bool = Field(True, description="What the readiness check reports (tests).")

    @field_validator("keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class AuditLog:
    """The component: keeps the last ``max_events`` (method, path, principal) seen."""

    name = "audit"

    def __init__(self, settings: AuditSettings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.events: list[tuple[str, str, str | None]] = []
        self.started = False

    async def start(self) -> None:
        # Proves the database started first: this query needs its pool.
        async with self.database.session() as session:
            assert await session.scalar(sa.text("SELECT 1")) == 1
        self.started = True
        JOURNAL.append("audit.start")

    async def stop(self) -> None:
        self.started = False
        JOURNAL.append("audit.stop")

    def record(self, method: str, path: str) -> None:
        principal = current_principal()
        self.events.append((method, path, principal.id if principal else None))
        del self.events[: -self.settings.max_events]

    async def check(self) -> dict[str, Any]:
        if not self.settings.healthy:
            raise RuntimeError("audit sink unreachable")
        return {"sink": self.settings.sink, "events": len(self.events)}


class AuditStats:
    """A Prometheus collector: ``tenfold_audit_events_total``."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("tenfold_audit_events", "Requests the audit log saw.")
        family.add_metric([], len(self.log.events))
        yield family


class AuditMiddleware:
    """Authentication slot: resolves ``X-Audit-Key`` to a principal, then records the request."""

    def __init__(self, app: ASGIApp, *, log: AuditLog) -> None:
        self.log = log
        self.app = AuthenticationMiddleware(self._recorded(app), resolve=self._resolve)

    def _resolve(self, connection: HTTPConnection) -> Principal | None:
        key = connection.headers.get("x-audit-key")
        user = self.log.settings.keys.get(key) if key else None
        return Principal(user, roles={"auditor"}) if user else None

    def _recorded(self, app: ASGIApp) -> ASGIApp:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.log.record(scope["method"], scope["path"])
            await app(scope, receive, send)

        return recorded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _routes() -> APIRouter:
    router = APIRouter()

    @router.get("/audit")
    async def audit(log: Use[AuditLog]) -> dict[str, Any]:
        return {"events": [list(e) for e in log.events], "sink": log.settings.sink}

    return router


@click.command("audit")
@click.option("--json", "as_json", is_flag=True)
@with_platform
async def audit_command(platform: Platform, as_json: bool) -> None:
    """Print what the audit log holds (a command of the audit extension)."""
    log = platform.get(AuditLog)
    if as_json:
        click.echo(json.dumps({"sink": log.settings.sink, "started": log.started}))
    else:
        click.echo(f"audit: sink={log.settings.sink} started={log.started}")


class AuditExtension(Extension):
    """The audit capability, declared in one place."""

    name = "audit"
    settings_model = AuditSettings
    requires = ("db",)

    def build(self, build: Build) -> None:
        log = AuditLog(build.section, build.get(Database))
        build.provide(log)
        build.component(log)
        build.check("audit.sink", log.check, critical=False)
        build.collector(AuditStats(log))
        build.middleware(Slot.AUTHENTICATION, AuditMiddleware, log=log)
        build.router(_routes())

    def commands(self) -> Sequence[click.Command]:
        return [audit_command]
