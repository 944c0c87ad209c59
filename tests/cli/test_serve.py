"""What `tenfold run` hands uvicorn, read back through uvicorn's own Config."""

from __future__ import annotations

from typing import Any

import uvicorn

from tenfold import Settings
from tenfold.cli._serve import uvicorn_options


def config(settings: Settings, **overrides: Any) -> uvicorn.Config:
    options = {"host": "127.0.0.1", "port": 8000, "app_dir": ".", "workers": 1, "reload": False}
    options.update(overrides)
    run_options = uvicorn_options("apps.hello.main:app", settings, **options)
    run_options.pop("app_dir")  # uvicorn.run's own: it puts the directory on sys.path
    return uvicorn.Config(**run_options)


def test_keep_alive_defaults_past_nginx() -> None:
    """With nothing set, idle connections stay open 75 s, longer than nginx's 60 s."""
    assert config(Settings()).timeout_keep_alive == 75


def test_keep_alive_from_the_setting_and_the_flag() -> None:
    """TENFOLD_HTTP__KEEP_ALIVE_TIMEOUT reaches uvicorn; --keep-alive-timeout overrides it."""
    settings = Settings(http={"keep_alive_timeout": 90})  # type: ignore[arg-type]
    assert config(settings).timeout_keep_alive == 90
    assert config(settings, keep_alive=120).timeout_keep_alive == 120


def test_uvicorn_never_rewrites_the_client() -> None:
    """uvicorn's proxy-header layer is off whatever FORWARDED_ALLOW_IPS says; tenfold resolves."""
    built = config(Settings(http={"trusted_proxies": "10.0.0.0/8"}))  # type: ignore[arg-type]
    assert built.proxy_headers is False
    assert built.forwarded_allow_ips == []
