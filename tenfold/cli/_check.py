"""``tenfold check``: validate settings, then reach every configured dependency.

It builds the same components the app would, starts them with no startup
retries, and prints the readiness report, so what it says is what ``/ready``
would say on a fresh instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenfold._errors import TenfoldError
from tenfold._settings import CoreSettings, HealthSettings
from tenfold.db import Database
from tenfold.health import HealthRegistry

__all__ = ["run_checks"]

_MARK = {"ok": "ok  ", "degraded": "WARN", "failing": "FAIL"}


async def run_checks(
    settings: CoreSettings, *, check_timeout: float, echo: Callable[[str], Any]
) -> bool:
    """Print one line per dependency; return whether the instance would be ready."""
    echo(f"settings: ok ({settings.profile} profile)")
    health = HealthRegistry(HealthSettings(check_timeout=check_timeout, cache_ttl=0))
    db_settings = settings.section("db").model_copy(
        update={
            "connect_retries": 0,
            "connect_timeout": min(check_timeout, settings.section("db").connect_timeout),
        }
    )
    database = Database(db_settings, health=health)
    try:
        await database.start()
    except TenfoldError as exc:
        echo(f"FAIL database: {exc}")
        return False
    try:
        report = await health.report()
    finally:
        await database.stop()
    ok = True
    for name, result in report.checks.items():
        status = result.get("status", "failing")
        detail = ", ".join(f"{k}={v}" for k, v in result.items() if k not in ("status", "critical"))
        echo(f"{_MARK.get(status, 'FAIL')} {name}: {detail}")
        ok = ok and not (status == "failing" and result.get("critical", True))
    if settings.redis.enabled:
        ok = await _check_redis(settings, check_timeout, echo) and ok
    echo(f"overall: {report.status if ok else 'failing'}")
    return ok


async def _check_redis(
    settings: CoreSettings, check_timeout: float, echo: Callable[[str], Any]
) -> bool:
    from redis.asyncio import Redis, RedisCluster
    from redis.exceptions import RedisError

    cfg = settings.redis
    try:
        if cfg.cluster_nodes:
            host, _, port = cfg.cluster_nodes[0].rpartition(":")
            client: Any = RedisCluster(host=host, port=int(port), socket_timeout=check_timeout)
            await client.initialize()
            info = await client.cluster_info()
            state = info.get("cluster_state") if isinstance(info, dict) else info
            echo(f"ok   redis cluster: {len(client.get_nodes())} nodes, state={state}")
        else:
            assert cfg.url is not None
            client = Redis.from_url(cfg.url.get_secret_value(), socket_timeout=check_timeout)
            await client.ping()
            echo(f"ok   redis: {client.connection_pool.connection_kwargs.get('host')}")
        await client.aclose()
        return True
    except (RedisError, OSError) as exc:
        echo(f"FAIL redis: {type(exc).__name__}: {exc}")
        return False
