"""`tenfold run`: uvicorn with uvloop and httptools, tenfold's logs, drain on SIGTERM.

With ``--workers N`` (N > 1) the workers are separate processes, each with its
own metrics; unless ``PROMETHEUS_MULTIPROC_DIR`` is already set, a fresh,
empty directory is made for them before they start and removed when the
server exits, so every worker's ``/metrics`` reports the sum over all of them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import click
import uvicorn

from tenfold._settings import CoreSettings

__all__ = ["serve", "uvicorn_options"]

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve(
    app_path: str,
    settings: CoreSettings,
    *,
    host: str,
    port: int,
    app_dir: str,
    workers: int,
    reload: bool,
    keep_alive: int | None = None,
) -> None:
    """Serve ``app_path`` with uvicorn until it is stopped (SIGTERM, Ctrl-C)."""
    options = uvicorn_options(
        app_path,
        settings,
        host=host,
        port=port,
        app_dir=app_dir,
        workers=workers,
        reload=reload,
        keep_alive=keep_alive,
    )
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(
        f"tenfold: serving {options['app']} on http://{shown_host}:{port} "
        f"({settings.profile} profile, {workers} worker{'s' if workers > 1 else ''})",
        err=True,
    )
    with _multiprocess_metrics(1 if reload else workers):
        uvicorn.run(**options)


def uvicorn_options(
    app_path: str,
    settings: CoreSettings,
    *,
    host: str,
    port: int,
    app_dir: str,
    workers: int,
    reload: bool,
    keep_alive: int | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` for these settings.

    ``keep_alive`` (``--keep-alive-timeout``) overrides TENFOLD_HTTP__KEEP_ALIVE_TIMEOUT.
    """
    return {
        "app": app_path.removesuffix("()"),
        "factory": app_path.endswith("()"),
        # A console script's sys.path starts at its bin directory, not the working directory.
        "app_dir": app_dir,
        "host": host,
        "port": port,
        "workers": None if reload else workers,
        "reload": reload,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "lifespan": "on",
        # tenfold writes its own structured access line; uvicorn's would be a second one.
        "access_log": False,
        "log_config": None,
        "server_header": False,
        # The client address and scheme behind proxies are resolved by the app's HTTP layer
        # (TENFOLD_HTTP__TRUSTED_PROXIES), the same under any server and in tests. uvicorn's
        # own layer would trust 127.0.0.1 by default and rewrite the client before tenfold
        # sees it, so anyone on the host could choose their address with X-Forwarded-For.
        "proxy_headers": False,
        "forwarded_allow_ips": [],
        # Longer than the proxy's own, so the proxy closes idle connections first; see
        # docs/deploy.md. uvicorn's default (5 s) lost races with nginx: a 502.
        "timeout_keep_alive": settings.http.keep_alive_timeout
        if keep_alive is None
        else keep_alive,
        # WebSocket fan-out: per-message deflate compresses every frame once per connection
        # and holds a zlib context per connection (the websockets library documents ~64 KiB
        # a connection with it, ~14 KiB without); see docs/realtime.md.
        "ws_per_message_deflate": False,
        # In-flight requests get this long after the listener closes; see tenfold.health.
        "timeout_graceful_shutdown": max(1, round(settings.health.drain_timeout)),
    }


@contextlib.contextmanager
def _multiprocess_metrics(workers: int) -> Iterator[None]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for the workers' lifetime, when there are several.

    The workers are spawned processes: they inherit the environment as it is when
    uvicorn starts them, and prometheus_client reads the variable when a worker first
    imports it, so it is set here, before. A directory of our own is made empty (a
    leftover file of a previous run would be counted again) and removed at exit; one
    the operator set is theirs to manage and is used as it is.
    """
    if workers <= 1 or os.environ.get(_MULTIPROC_ENV):
        yield
        return
    path = tempfile.mkdtemp(prefix="tenfold-metrics-")
    os.environ[_MULTIPROC_ENV] = path
    click.echo(f"tenfold: the workers' metrics are summed in {_MULTIPROC_ENV}={path}", err=True)
    try:
        yield
    finally:
        os.environ.pop(_MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)
