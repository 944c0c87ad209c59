"""``tenfold worker``: a Celery worker for the app's platform."""

from __future__ import annotations

import sys

import click

from tenfold._errors import ConfigurationError
from tenfold.cli import fail
from tenfold.cli._target import target_of

__all__ = ["worker"]


def _queues(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one queue")
    return names


def _autoscale(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    high, _, low = value.partition(",")
    try:
        bounds = int(high), int(low or 0)
    except ValueError:
        raise click.BadParameter("MAX,MIN process counts, e.g. 8,2") from None
    if bounds[1] < 0 or bounds[0] < max(bounds[1], 1):
        raise click.BadParameter("MAX,MIN with MAX >= MIN >= 0 and MAX >= 1")
    return bounds


@click.command("worker")
@click.option(
    "--queues",
    "-Q",
    default=None,
    help="Comma-separated queues to consume [default: TENFOLD_JOBS__DEFAULT_QUEUE].",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Pool processes [default: the number of CPUs].",
)
@click.option("--autoscale", default=None, help="MAX,MIN pool processes, grown with the load.")
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
    help="Celery execution pool.",
)
@click.option(
    "--loglevel",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Serve the task metrics on this port [default: TENFOLD_JOBS__WORKER_METRICS_PORT].",
)
@click.pass_context
def worker(
    ctx: click.Context,
    queues: str | None,
    concurrency: int | None,
    autoscale: str | None,
    pool: str,
    loglevel: str,
    metrics_port: int | None,
) -> None:
    """Run a Celery worker for the app's tasks, with the app's platform in each process."""
    from tenfold._platform import _wants_console as wants_console
    from tenfold.jobs._jobs import Jobs
    from tenfold.jobs._worker import run_worker
    from tenfold.observability import configure_logging

    platform = target_of(ctx).platform()
    jobs = platform.get(Jobs)
    if jobs.broker == "memory":
        fail(
            "TENFOLD_JOBS__BROKER resolves to the in-process memory broker, which a worker "
            "process cannot share: set TENFOLD_REDIS__URL, or TENFOLD_JOBS__BROKER and "
            "TENFOLD_JOBS__BROKER_URL",
            code=2,
        )
    # A worker is a service like `run`: its lines follow TENFOLD_OBSERVABILITY__LOG_FORMAT
    # (JSON outside local development), so a log pipeline can match them to requests.
    console = wants_console(platform.settings)
    configure_logging(platform.settings.observability, console=console, stream=sys.stderr.buffer)
    try:
        code = run_worker(
            platform,
            jobs,
            queues=_queues(queues),
            concurrency=concurrency,
            autoscale=_autoscale(autoscale),
            pool=pool,
            loglevel=loglevel,
            metrics_port=metrics_port,
        )
    except ConfigurationError as exc:
        fail(str(exc), code=2)
    sys.exit(code)
