"""A SQLite file both the test and `tenfold worker` open, and the worker as a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tenfold import CoreSettings, Platform, RedisSettings, Settings
from tenfold.jobs import JobsExtension, JobsSettings, Tasks
from tenfold.jobs import metadata as jobs_metadata
from tenfold.jobs._celery import redis_lists
from tenfold.testing import PgCluster, RabbitMQServer, RedisServer
from tests.jobs import worker_app

REPO = Path(__file__).resolve().parents[2]
TENFOLD = Path(sys.executable).with_name("tenfold")
_NOT_INHERITED = ("TENFOLD_", "PYTHONPATH", "PROMETHEUS_")
#: Signs pagination cursors; PostgreSQL requires one (TENFOLD_DB__CURSOR_SECRET).
_CURSOR_SECRET = "jobs-tests-cursor-secret"


class JobsWorld:
    """The database file, the worker's environment, and helpers over both."""

    def __init__(self, tmp_path: Path, redis_server: RedisServer) -> None:
        self.tmp_path = tmp_path
        self.db_file = tmp_path / "jobs.db"
        self.redis = redis_server
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
        self.env["TENFOLD_DB__URL"] = f"sqlite+aiosqlite:///{self.db_file}"
        self.env["TENFOLD_REDIS__URL"] = redis_server.url
        #: The app ``tenfold --app`` loads, and the tasks it registers (the enqueueing side
        #: registers the same ones).
        self.app = "tests.jobs.worker_app:make_app"
        self.tasks: Tasks = worker_app.tasks
        #: The libpq URL of the PostgreSQL database, once ``use_postgres`` chose one.
        self.pg_dsn: str | None = None

    def use_postgres(self, url: str, dsn: str) -> None:
        """Worker and enqueuer use PostgreSQL at ``url`` (SQLAlchemy) / ``dsn`` (libpq)."""
        self.env["TENFOLD_DB__URL"] = url
        self.env["TENFOLD_DB__CURSOR_SECRET"] = _CURSOR_SECRET
        self.pg_dsn = dsn

    def _section(self, name: str) -> dict[str, str]:
        prefix = f"TENFOLD_{name.upper()}__"
        return {
            k.removeprefix(prefix).lower(): v for k, v in self.env.items() if k.startswith(prefix)
        }

    def use_rabbitmq(self, server: RabbitMQServer) -> None:
        """Send and consume through ``server`` (beat's lease stays on Redis)."""
        self.env["TENFOLD_JOBS__BROKER"] = "rabbitmq"
        self.env["TENFOLD_JOBS__BROKER_URL"] = server.url

    def platform(self) -> Platform:
        """The enqueueing side: the same app's extensions and settings, built in the test
        process."""
        composed = CoreSettings.compose([*Settings.sections.items(), ("jobs", JobsSettings)])
        settings = composed.load(
            db=self._section("db"),
            redis=RedisSettings(url=self.redis.url),
            jobs=self._section("jobs"),
        )
        return Platform.build(
            settings, extensions=[JobsExtension(tasks=[self.tasks])], configure_logs=False
        )

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` on the worker's database (PostgreSQL or the SQLite file)."""
        if self.pg_dsn is None:
            return await asyncio.to_thread(self.query, sql)
        import asyncpg

        conn = await asyncpg.connect(self.pg_dsn, timeout=10)
        try:
            return [tuple(record) for record in await conn.fetch(sql, timeout=30)]
        finally:
            await conn.close()

    def rows(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.db_file) as conn:
            return list(conn.execute("SELECT marker, sent_to FROM marks ORDER BY id"))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_file) as conn:
            return list(conn.execute(sql))

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with sqlite3.connect(self.db_file) as conn:
            conn.execute(sql, params)

    async def wait_for_dead_letters(self, count: int) -> None:
        """Return once ``count`` dead letters exist; fail after about 60 s (a hang guard)."""
        for _ in range(600):
            found = await asyncio.to_thread(
                self.query, "SELECT count(*) FROM tenfold_job_dead_letters"
            )
            if found[0][0] >= count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"fewer than {count} dead letters after 60 s")

    async def wait_for_row(self, marker: str, *, count: int = 1) -> None:
        """Return once ``count`` rows with ``marker`` exist; fail after about 60 s (a hang
        guard)."""
        for _ in range(600):
            if [m for m, _ in await asyncio.to_thread(self.rows)].count(marker) >= count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"no row {marker!r} after 60 s; rows: {self.rows()}")

    @asynccontextmanager
    async def worker(self, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
        """`tenfold --app tests.jobs.worker_app:make_app worker *args`, SIGTERM on exit."""
        async with self.command("worker", *args, log=f"worker-{'-'.join(args)}") as proc:
            yield proc

    @asynccontextmanager
    async def command(
        self,
        name: str,
        *args: str,
        log: str,
        stop_within: float = 60,
        new_session: bool = False,
    ) -> AsyncIterator[asyncio.subprocess.Process]:
        """`tenfold --app <self.app> <name> *args`, its output in ``<log>.log``; SIGTERM on
        exit, killed if it has not stopped ``stop_within`` later. ``new_session``: in a
        process group of its own (which a test may kill whole)."""
        out = (self.tmp_path / f"{log}.log").open("wb")
        argv = [str(TENFOLD), "--app", self.app, "--app-dir", str(REPO)]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            name,
            *args,
            cwd=self.tmp_path,
            env=self.env,
            stdout=out,
            stderr=out,
            start_new_session=new_session,
        )
        out.close()
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), stop_within)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """`tenfold --app <self.app> *args`: exit status, stdout, stderr."""
        argv = [str(TENFOLD), "--app", self.app, "--app-dir", str(REPO)]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            *args,
            cwd=self.tmp_path,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    def log_of(self, *args: str) -> str:
        return (self.tmp_path / f"worker-{'-'.join(args)}.log").read_text(errors="replace")

    def log(self, name: str) -> str:
        """The output of the command started with ``log=name``."""
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def jobs_world(tmp_path: Path, redis_server: RedisServer) -> JobsWorld:
    world = JobsWorld(tmp_path, redis_server)
    engine = sa.create_engine(f"sqlite:///{world.db_file}")
    worker_app.metadata.create_all(engine)
    jobs_metadata.create_all(engine)
    engine.dispose()
    return world


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_world(request: pytest.FixtureRequest, jobs_world: JobsWorld) -> JobsWorld:
    """``jobs_world`` on each broker in turn: Redis, then RabbitMQ."""
    if request.param == "rabbitmq":
        jobs_world.use_rabbitmq(request.getfixturevalue("rabbitmq_server"))
    return jobs_world


def redis_client(server: RedisServer) -> Any:
    import redis

    return redis.Redis.from_url(server.url)


def waiting(server: RedisServer, queue: str) -> list[bytes]:
    """The messages waiting in ``queue`` on Redis (all its priority lists), in the order a
    worker takes them."""
    client = redis_client(server)
    return [raw for name in redis_lists(queue) for raw in reversed(client.lrange(name, 0, -1))]


@pytest.fixture
async def pg_jobs_world(
    tmp_path: Path, redis_server: RedisServer, pg_cluster: PgCluster, fresh_pg_database: str
) -> JobsWorld:
    """A JobsWorld whose database is a fresh PostgreSQL one, with ``marks`` and the jobs
    tables."""
    from sqlalchemy.ext.asyncio import create_async_engine

    world = JobsWorld(tmp_path, redis_server)
    world.use_postgres(
        pg_cluster.primary.url(fresh_pg_database), pg_cluster.primary.dsn(fresh_pg_database)
    )
    engine = create_async_engine(world.env["TENFOLD_DB__URL"])
    try:
        async with engine.begin() as conn:
            await conn.run_sync(worker_app.metadata.create_all)
            await conn.run_sync(jobs_metadata.create_all)
    finally:
        await engine.dispose()
    return world
