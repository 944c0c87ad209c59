"""``tenfold projections run|status|rebuild``: the app's projections from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
from typing import TYPE_CHECKING

import click
import orjson

from tenfold.cli import fail, with_platform

if TYPE_CHECKING:
    from tenfold._platform import Platform
    from tenfold.events._projection import Projections

__all__ = ["projections_group"]


def _projections(platform: Platform, names: tuple[str, ...] = ()) -> Projections:
    from tenfold.events._projection import Projections

    projections = platform.get(Projections)
    unknown = [name for name in names if name not in projections.names]
    if unknown:
        known = ", ".join(projections.names) or "none"
        fail(f"no projection {', '.join(unknown)} (registered: {known})", code=2)
    return projections


@click.group("projections")
def projections_group() -> None:
    """Read models built from the event log: run, status, rebuild."""


@projections_group.command("run")
@click.argument("names", nargs=-1)
@with_platform
async def run(platform: Platform, names: tuple[str, ...]) -> None:
    """Keep the projections NAMES (default: all) caught up until SIGINT or SIGTERM."""
    from tenfold.events._follow import ProjectionRunner

    projections = _projections(platform, names)
    settings = platform.settings.section("events")
    runner = ProjectionRunner(
        projections, names or None, max_retry_delay=settings.projections_max_retry_delay
    )
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    click.echo(f"following {', '.join(names or projections.names)}", err=True)
    with contextlib.suppress(asyncio.CancelledError):
        await runner.run()
    click.echo("stopped", err=True)


@projections_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_platform
async def status(platform: Platform, as_json: bool) -> None:
    """Each projection's checkpoint and how many committed events it is behind."""
    projections = _projections(platform)
    found = [await projections.status(name) for name in projections.names]
    if as_json:
        data = [s.to_dict() for s in found]
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    if not found:
        click.echo("no projections")
    for item in found:
        when = "never" if item.updated_at is None else _when(item.updated_at)
        click.echo(f"{item.name}\tcheckpoint={item.checkpoint}\tbehind={item.behind}\t{when}")


@projections_group.command("rebuild")
@click.argument("name")
@with_platform
async def rebuild(platform: Platform, name: str) -> None:
    """Build NAME's read model again from the start of the log, and swap it in."""
    projections = _projections(platform, (name,))
    position = await projections.rebuild(name)
    click.echo(f"rebuilt {name} at {position}")


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
