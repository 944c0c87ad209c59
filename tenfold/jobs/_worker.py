"""Starting a Celery worker programmatically for a built (not started) platform."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from celery import signals

from tenfold.jobs._runtime import WorkerRuntime

if TYPE_CHECKING:
    from tenfold._platform import Platform
    from tenfold.jobs._jobs import Jobs

__all__ = ["run_worker"]


def _keep_tenfold_logging(**_: Any) -> None:
    """Connected to ``setup_logging``: a receiver there stops Celery configuring logs."""


def run_worker(
    platform: Platform,
    jobs: Jobs,
    *,
    queues: list[str] | None,
    concurrency: int | None,
    autoscale: tuple[int, int] | None,
    pool: str,
    loglevel: str,
) -> int:
    """Run a worker until it is told to stop (SIGTERM: warm shutdown); its exit code.

    The platform is built here and started lazily in each pool process, on
    that process's event loop, the first time an ``async def`` task runs.
    """
    runtime = WorkerRuntime(platform)
    jobs.runtime = runtime
    # Pool processes run tasks, not the outbox relay: the app's processes and beat do.
    jobs.relay = None
    signals.setup_logging.connect(_keep_tenfold_logging, weak=False)
    # That receiver also skips Celery's own use of --loglevel: apply it to Celery's loggers
    # here (pool processes inherit it), or every task logs two INFO lines whatever was asked.
    logging.getLogger("celery").setLevel(loglevel.upper())
    # Pool processes stop their platform as they exit; the solo pool runs tasks in the
    # main process, which says so with worker_shutdown.
    signals.worker_process_shutdown.connect(runtime.close, weak=False)
    signals.worker_shutdown.connect(runtime.close, weak=False)
    options: dict[str, Any] = {
        "hostname": f"{platform.settings.app.name}@{socket.gethostname()}",
        "queues": queues or [jobs.settings.default_queue],
        "pool_cls": pool,
        "loglevel": loglevel,
        # Mingle and gossip talk over broadcast exchanges, off with remote control.
        "without_mingle": True,
        "without_gossip": True,
        "optimization": "fair",
    }
    if concurrency is not None:
        options["concurrency"] = concurrency
    if autoscale is not None:
        options["autoscale"] = f"{autoscale[0]},{autoscale[1]}"
    worker = jobs.app.Worker(**options)
    worker.start()
    return int(worker.exitcode or 0)
