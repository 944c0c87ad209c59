"""``tenfold check``: validate settings, then reach every configured dependency.

It opens the same platform the app would (its extensions included, with
``--app``), without startup retries, and prints every readiness check, so
what it says is what ``/ready`` would say on a fresh instance. Unlike
``/ready`` it is strict: any failing check, critical or not, exits 1, since
a configured dependency that cannot be reached is worth knowing about before
a deploy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenfold._errors import TenfoldError

if TYPE_CHECKING:
    from tenfold._platform import Platform

__all__ = ["run_checks", "without_retries"]

_MARK = {"ok": "ok  ", "degraded": "WARN", "failing": "FAIL"}


def without_retries(platform: Platform, check_timeout: float) -> Platform:
    """A copy of ``platform`` (same extensions) that connects once, within ``check_timeout``."""
    from tenfold._platform import Platform

    settings = platform.settings
    update: dict[str, Any] = {
        "health": settings.health.model_copy(
            update={"check_timeout": check_timeout, "cache_ttl": 0}
        )
    }
    db = getattr(settings, "db", None)
    if db is not None and hasattr(db, "connect_retries"):
        update["db"] = db.model_copy(
            update={"connect_retries": 0, "connect_timeout": min(check_timeout, db.connect_timeout)}
        )
    return Platform.build(
        settings.model_copy(update=update),
        extensions=platform.extensions,
        builtins=False,
        configure_logs=False,
    )


async def run_checks(platform: Platform, *, echo: Callable[[str], Any]) -> bool:
    """Start ``platform``, print one line per readiness check; return whether all pass.

    A component that cannot start (a database that is down) is reported as failing and
    the others are still started and checked, so the output always ends with every
    check and the ``overall:`` line.
    """
    echo(f"settings: ok ({platform.settings.profile} profile)")
    ok = True
    try:
        failed = await platform.start(keep_going=True)
        for name, exc in failed.items():
            message = str(exc) if isinstance(exc, TenfoldError) else type(exc).__name__
            echo(f"FAIL {name} (could not start): {message}")
            ok = False
        report = await platform.health.report()
    finally:
        await platform.stop()
    for name, result in report.checks.items():
        status = result.get("status", "failing")
        detail = ", ".join(f"{k}={v}" for k, v in result.items() if k not in ("status", "critical"))
        label = name if result.get("critical", True) else f"{name} (not critical)"
        echo(f"{_MARK.get(status, 'FAIL')} {label}: {detail}")
        ok = ok and status in ("ok", "degraded")  # degraded works: a warning, not a failure
    echo(f"overall: {report.status if ok else 'failing'}")
    return ok
