"""The pytest plugin (entry point ``pytest11: tenfold``): fixtures over the harness servers.

Servers start lazily, the first time a test requests their fixture, and stop
when the session ends. See ``tenfold.testing`` for the fixture list.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest

from tenfold.testing._errors import MissingBinary, NotManaged
from tenfold.testing._pgbouncer import PgBouncer
from tenfold.testing._pgcluster import PgCluster
from tenfold.testing._process import make_workdir
from tenfold.testing._proxy import FaultProxy
from tenfold.testing._rabbitmq import RabbitMQServer
from tenfold.testing._redis import RedisCluster, RedisServer

KEEP_DIR_ENV = "TENFOLD_TEST_KEEP_DIR"


class _Healable(Protocol):
    def heal(self) -> None: ...


class _Harness:
    """Per-session state: the temp dir and the servers started so far."""

    def __init__(self) -> None:
        self._workdir: Path | None = None
        self.active: dict[str, _Healable] = {}

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = make_workdir()
        return self._workdir

    def heal_all(self) -> None:
        for server in list(self.active.values()):
            server.heal()

    def close(self) -> None:
        if self._workdir is not None and not os.environ.get(KEEP_DIR_ENV):
            shutil.rmtree(self._workdir, ignore_errors=True)


_HARNESS = pytest.StashKey[_Harness]()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@contextmanager
def _binaries_required() -> Iterator[None]:
    """A missing binary skips the test, except under CI=true where it fails it."""
    try:
        yield
    except MissingBinary as exc:
        if _in_ci():
            pytest.fail(f"CI=true and a server binary is missing: {exc}", pytrace=False)
        pytest.skip(str(exc))


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_HARNESS] = _Harness()


def pytest_unconfigure(config: pytest.Config) -> None:
    harness = config.stash.get(_HARNESS, None)
    if harness is not None:
        harness.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    # Break-helpers on external servers raise NotManaged: that test cannot
    # run against this setup, which is a skip, not a failure.
    try:
        return (yield)
    except NotManaged as exc:
        pytest.skip(f"needs a harness-owned server: {exc}")


def _register(request: pytest.FixtureRequest, name: str, server: Any) -> _Harness:
    harness = request.config.stash[_HARNESS]
    harness.active[name] = server
    return harness


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> Iterator[PgCluster]:
    """PostgreSQL primary + streaming replica (or the TENFOLD_TEST_PG_* servers)."""
    cluster = PgCluster.from_env()
    if cluster is None:
        with _binaries_required():
            cluster = PgCluster.launch(request.config.stash[_HARNESS].workdir)
    harness = _register(request, "pg_cluster", cluster)
    yield cluster
    del harness.active["pg_cluster"]
    cluster.close()


@pytest.fixture
def fresh_pg_database(pg_cluster: PgCluster) -> Iterator[str]:
    """A new, empty database (on primary and replica) for one test; dropped afterwards."""
    name = pg_cluster.create_database()
    yield name
    pg_cluster.heal()  # the test may have left the primary stopped
    pg_cluster.drop_database(name)


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A standalone Redis (or the TENFOLD_TEST_REDIS_URL server)."""
    server = RedisServer.from_env()
    if server is None:
        with _binaries_required():
            server = RedisServer.launch(request.config.stash[_HARNESS].workdir)
    harness = _register(request, "redis_server", server)
    yield server
    del harness.active["redis_server"]
    server.close()


@pytest.fixture(scope="session")
def redis_cluster(request: pytest.FixtureRequest) -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster (or the TENFOLD_TEST_REDIS_CLUSTER nodes)."""
    cluster = RedisCluster.from_env()
    if cluster is None:
        with _binaries_required():
            cluster = RedisCluster.launch(request.config.stash[_HARNESS].workdir)
    harness = _register(request, "redis_cluster", cluster)
    yield cluster
    del harness.active["redis_cluster"]
    cluster.close()


@pytest.fixture(scope="session")
def rabbitmq_server(request: pytest.FixtureRequest) -> Iterator[RabbitMQServer]:
    """A RabbitMQ broker node of the harness's own (or the TENFOLD_TEST_RABBITMQ_URL broker)."""
    server = RabbitMQServer.from_env()
    if server is None:
        with _binaries_required():
            server = RabbitMQServer.launch(request.config.stash[_HARNESS].workdir)
    harness = _register(request, "rabbitmq_server", server)
    yield server
    del harness.active["rabbitmq_server"]
    server.close()


@pytest.fixture(scope="session")
def pgbouncer(request: pytest.FixtureRequest, pg_cluster: PgCluster) -> Iterator[PgBouncer]:
    """pgbouncer in transaction pooling mode in front of ``pg_cluster.primary``."""
    with _binaries_required():
        bouncer = PgBouncer.launch(request.config.stash[_HARNESS].workdir, pg_cluster.primary)
    harness = _register(request, "pgbouncer", bouncer)
    yield bouncer
    del harness.active["pgbouncer"]
    bouncer.close()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """Factory ``fault_proxy(host, port) -> FaultProxy``, already running in its own thread."""
    proxies: list[FaultProxy] = []

    def make(upstream_host: str, upstream_port: int, **options: Any) -> FaultProxy:
        proxy = FaultProxy(upstream_host, upstream_port, **options).start_sync()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop_sync()


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Any:
    """``Settings`` for an app on the embedded profile, its SQLite file in ``tmp_path``.

    The environment still applies (a ``TENFOLD_REDIS__URL`` adds Redis); only
    the database is pinned, so each test starts from an empty one.
    """
    from tenfold import Settings

    return Settings.load(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})


@pytest.fixture(autouse=True)
def _tenfold_heal_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    # A test that stops, pauses or lags a shared server must not break the next
    # one: after every test, undo what the break-helpers did (cheap if nothing was).
    yield
    request.config.stash[_HARNESS].heal_all()
