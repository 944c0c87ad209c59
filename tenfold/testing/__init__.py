"""tenfold's test harness: real PostgreSQL, Redis, pgbouncer and RabbitMQ, and ways to break them.

It is a pytest plugin (registered as ``pytest11: tenfold``), so installing
tenfold makes the fixtures available in any project's tests. Servers run
from this machine's binaries (``/usr/lib/postgresql/<15+>/bin``,
``redis-server``, ``redis-cli``, ``pgbouncer``, ``rabbitmq-server``) in a temp dir on free
loopback ports. Each starts the first time a test asks for it and stops at
the end of the session; no process outlives pytest (finalizers, ``atexit``,
and ``PR_SET_PDEATHSIG`` for a SIGKILLed pytest).

Fixtures
--------
Session-scoped, sync (so they work with any event loop):

``pg_cluster`` -> ``PgCluster``
    ``.primary`` / ``.replica`` (``PgServer``: ``.host .port .datadir``,
    ``url(db, driver="postgresql+asyncpg")``, ``dsn(db)``, ``psql(*sql, db=)``,
    ``start() stop(mode) kill() restart() pause() resume() is_running()``),
    ``pause_replay() resume_replay() wait_caught_up(timeout) lag_bytes()``,
    ``create_database(name=None) -> name`` (visible on the replica when it
    returns), ``drop_database(name)``.
``redis_server`` -> ``RedisServer``
    ``.host .port .url``, ``client()``, ``command(*args)``,
    ``start() stop() kill() restart() pause() resume() flushall()``,
    ``client_pause(ms, mode="all"|"write")`` / ``client_unpause()`` (Redis 7
    holds even ``CLIENT UNPAUSE`` during a pause of ALL: it waits the pause out).
``redis_cluster`` -> ``RedisCluster``
    three masters; ``.nodes`` (``RedisServer``), ``.startup_nodes``
    (``["127.0.0.1:p", ...]``), ``.url`` (first node), ``client()``, ``wait_ok()``.
``rabbitmq_server`` -> ``RabbitMQServer``
    a broker node of its own (own node name, cookie and data dir; AMQP and
    Erlang distribution ports on 127.0.0.1); ``.host .port .url``
    (``amqp://guest:guest@127.0.0.1:<port>//``), ``.node``, ``ctl(*args)``
    (``rabbitmqctl -n <node> ...``), ``handshake(timeout)``,
    ``start() stop() kill() restart() pause() resume() is_running()``.
``pgbouncer`` -> ``PgBouncer``
    transaction pooling in front of ``pg_cluster.primary``; ``.port``,
    ``url(db)``, ``dsn(db)``, ``admin("SHOW POOLS")``, plus the break-helpers.

Function-scoped:

``fresh_pg_database`` -> ``str``
    the name of a new empty database, dropped after the test.
``embedded_settings`` -> ``Settings``
    the embedded profile with its SQLite database in the test's ``tmp_path``.
``fault_proxy`` -> factory ``(upstream_host, upstream_port) -> FaultProxy``
    already listening (in its own thread); stopped after the test. See
    ``FaultProxy`` for latency, blackhole, reset and heal.

After every test the plugin *heals* what break-helpers broke (restarts
stopped servers, resumes paused ones and WAL replay, lifts ``CLIENT PAUSE``),
so one test's outage never leaks into the next.

Environment
-----------
``TENFOLD_TEST_PG_PRIMARY`` / ``TENFOLD_TEST_PG_REPLICA``
    ``host:port`` or a ``postgresql://`` URL of external servers to use instead.
``TENFOLD_TEST_REDIS_URL``
    ``redis://`` URL of an external standalone Redis.
``TENFOLD_TEST_REDIS_CLUSTER``
    ``host:port,host:port,...`` of an external Redis Cluster.
``TENFOLD_TEST_RABBITMQ_URL``
    ``amqp://`` URL of an external RabbitMQ broker.
``TENFOLD_TEST_BIN_PATH``
    directories (``os.pathsep``-joined) to search for binaries instead of the
    defaults.
``TENFOLD_TEST_KEEP_DIR``
    keep the temp dir (data dirs and server logs) after the session.
``CI``
    with ``CI=true`` a missing binary fails the tests that need it, naming
    the package to install; otherwise they are skipped with that message.

Helpers
-------
``async with app_client(app) as client``
    an ``httpx.AsyncClient`` on ``app`` in process, with its lifespan (the
    platform's start and stop) run around it.
``async with serve_asgi(app) as url``
    ``app`` served by uvicorn on a free loopback port in the test's loop: a
    fake upstream service the app under test calls over real sockets.
``attach_platform(app, *objects)``
    a platform (no extensions) providing objects a test built, for apps wired
    by hand; ``ManualClock`` for injected time; ``allocate_port`` for a free
    loopback port; ``RecordingListener`` records what a bus tells a listener.

Break-helpers that need the process (stop, kill, pause, ...) raise
``NotManaged`` on external servers; inside a test that becomes a skip.
"""

from tenfold.testing._client import app_client
from tenfold.testing._clock import ManualClock
from tenfold.testing._errors import HarnessError, MissingBinary, NotManaged
from tenfold.testing._listener import RecordingListener
from tenfold.testing._pgbouncer import PgBouncer
from tenfold.testing._pgcluster import PgCluster
from tenfold.testing._platform import attach_platform
from tenfold.testing._ports import allocate_port, release_port
from tenfold.testing._postgres import PgServer
from tenfold.testing._proxy import FaultProxy
from tenfold.testing._rabbitmq import RabbitMQServer
from tenfold.testing._redis import RedisCluster, RedisServer
from tenfold.testing._serve import serve_asgi

__all__ = [
    "FaultProxy",
    "HarnessError",
    "ManualClock",
    "MissingBinary",
    "NotManaged",
    "PgBouncer",
    "PgCluster",
    "PgServer",
    "RabbitMQServer",
    "RecordingListener",
    "RedisCluster",
    "RedisServer",
    "allocate_port",
    "app_client",
    "attach_platform",
    "release_port",
    "serve_asgi",
]
