"""`tenfold run`: uvicorn with uvloop and httptools, tenfold's logs, drain on SIGTERM."""

from __future__ import annotations

import importlib.util

import click
import uvicorn

from tenfold._settings import CoreSettings

__all__ = ["serve"]


def serve(
    app_path: str,
    settings: CoreSettings,
    *,
    host: str,
    port: int,
    app_dir: str,
    workers: int,
    reload: bool,
) -> None:
    factory = app_path.endswith("()")
    target = app_path.removesuffix("()")
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(
        f"tenfold: serving {target} on http://{shown_host}:{port} "
        f"({settings.profile} profile, {workers} worker{'s' if workers > 1 else ''})",
        err=True,
    )
    uvicorn.run(
        target,
        factory=factory,
        # A console script's sys.path starts at its bin directory, not the working directory.
        app_dir=app_dir,
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        loop=loop,
        http=http,
        lifespan="on",
        # tenfold writes its own structured access line; uvicorn's would be a second one.
        access_log=False,
        log_config=None,
        server_header=False,
        # The client address and scheme behind proxies are resolved by the app's HTTP layer
        # (TENFOLD_HTTP__TRUSTED_PROXIES), the same under any server and in tests. uvicorn's
        # own layer would trust 127.0.0.1 by default and rewrite the client before tenfold
        # sees it, so anyone on the host could choose their address with X-Forwarded-For.
        proxy_headers=False,
        forwarded_allow_ips=[],
        # In-flight requests get this long after the listener closes; see tenfold.health.
        timeout_graceful_shutdown=max(1, round(settings.health.drain_timeout)),
    )
