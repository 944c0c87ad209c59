"""Starting a Celery worker programmatically for a built (not started) platform."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from celery import signals

from tenfold._errors import ConfigurationError
from tenfold.jobs._metrics import MetricsServer
from tenfold.jobs._runtime import WorkerRuntime
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold._platform import Platform
    from tenfold.jobs._jobs import Jobs

__all__ = ["run_worker"]

_log = get_logger("tenfold.jobs")


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
    metrics_port: int | None = None,
) -> int:
    """Run a worker until it is told to stop (SIGTERM: warm shutdown); its exit code.

    The platform is built here and started lazily in each pool process, on
    that process's event loop, the first time an ``async def`` task runs.
    ``metrics_port`` (else TENFOLD_JOBS__WORKER_METRICS_PORT) serves the task
    metrics from this main process.
    """
    runtime = WorkerRuntime(platform)
    jobs.runtime = runtime
    platform.worker = True
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
    server = _metrics_server(platform, jobs, metrics_port, lambda: getattr(worker, "pool", None))
    try:
        worker.start()
    finally:
        if server is not None:
            server.stop()
    return int(worker.exitcode or 0)


def _metrics_server(
    platform: Platform, jobs: Jobs, port: int | None, pool: Any
) -> MetricsServer | None:
    port = jobs.settings.worker_metrics_port if port is None else port
    if port is None:
        return None
    stats = jobs.worker_stats
    stats.pool = pool
    server = MetricsServer(stats, host=jobs.settings.worker_metrics_host, port=port)
    # Started before the pool forks: its thread stays in this process (a fork copies none).
    try:
        server.start()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve the worker's metrics on {server.host}:{port} ({exc.strerror}): "
            "choose another --metrics-port or TENFOLD_JOBS__WORKER_METRICS_PORT",
            setting="TENFOLD_JOBS__WORKER_METRICS_PORT",
        ) from exc
    _log.info("worker_metrics_serving", host=server.host, port=server.port)
    return server
