"""A PostgreSQL server of the benchmark's own: launched fresh, dropped after.

    with own_postgres("tenfold-bench-jobs-pg-", databases=["bench"]) as pg:
        url = pg.url("bench")

It is the test harness's primary (``tenfold.testing._postgres``), which runs
with ``fsync = off``; ``settings`` overrides server settings before the
benchmark starts (``{"fsync": "on"}`` for a durable commit), and
``server_settings(pg)`` reads back the ones a benchmark reports.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tenfold.testing import PgServer
from tenfold.testing._postgres import launch_primary

__all__ = ["REPORTED", "own_postgres", "server_settings"]

#: The settings that decide what a commit costs: reported beside commit-bound figures.
REPORTED = ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")


@contextmanager
def own_postgres(
    prefix: str,
    *,
    databases: Sequence[str] = (),
    settings: Mapping[str, str] | None = None,
) -> Iterator[PgServer]:
    """A fresh PostgreSQL server with ``databases`` created; stopped and deleted on exit."""
    pg_dir = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:  # the server runs as the postgres user, never as root
        shutil.chown(pg_dir, "postgres", "postgres")
    pg = launch_primary(pg_dir, name="pg-bench")
    try:
        for name, value in (settings or {}).items():
            pg.psql(f"ALTER SYSTEM SET {name} = '{value}'")
        if settings:
            # Every setting a benchmark changes is a reload (sighup) one, not a restart.
            pg.psql("SELECT pg_reload_conf()")
        for database in databases:
            pg.psql(f"CREATE DATABASE {database}")
        yield pg
    finally:
        pg.close()
        shutil.rmtree(pg_dir, ignore_errors=True)


def server_settings(pg: PgServer, names: Sequence[str] = REPORTED) -> dict[str, str]:
    """The server's current value of each setting in ``names``."""
    return {name: pg.psql(f"SHOW {name}") for name in names}
