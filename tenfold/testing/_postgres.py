"""One PostgreSQL server: a harness-owned primary or replica, or an external one."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from tenfold.testing._binaries import find_binary, find_pg_bindir
from tenfold.testing._errors import HarnessError, MissingBinary, NotManaged
from tenfold.testing._ports import allocate_port, release_port
from tenfold.testing._process import ServerProcess, chown, poll_until, run_tool, server_user

__all__ = ["PgServer", "parse_pg_address"]

StopMode = Literal["smart", "fast", "immediate"]
_STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
REPLICATION_SLOT = "tenfold_replica"

_PRIMARY_CONF = """
# --- tenfold test harness ---
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockdir}'
max_connections = 200
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = '128MB'
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = '1s'
# The default 5 s would make every primary restart stall the replica.
wal_retrieve_retry_interval = '200ms'
fsync = off
# Left on (it costs nothing without fsync): with it off, pg_current_wal_lsn()
# can lag a committed transaction, and LSN-based read-your-writes checks lie.
synchronous_commit = on
"""

_HBA = """\
local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


def parse_pg_address(value: str) -> tuple[str, int, str, str | None]:
    """Parse ``host:port`` or a postgres URL into (host, port, user, password)."""
    if "://" not in value:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise HarnessError(f"expected host:port or a postgresql:// URL, got {value!r}")
        return host, int(port), "postgres", None
    parts = urlsplit(value)
    password = unquote(parts.password) if parts.password is not None else None
    user = unquote(parts.username) if parts.username else "postgres"
    return parts.hostname or "127.0.0.1", parts.port or 5432, user, password


def _psql_binary() -> Path:
    try:
        return find_pg_bindir() / "psql"
    except MissingBinary:
        return find_binary("psql")


class PgServer:
    """A PostgreSQL server the tests talk to.

    Harness-owned servers (``managed``) can be stopped, killed, paused and
    restarted on the same port and data directory. On an external server those
    helpers raise ``NotManaged``.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str = "postgres",
        password: str | None = None,
        datadir: Path | None = None,
        process: ServerProcess | None = None,
        bindir: Path | None = None,
        name: str = "postgres",
    ) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.datadir = datadir
        self.process = process
        self.bindir = bindir
        self.name = name

    def __repr__(self) -> str:
        kind = "managed" if self.managed else "external"
        return f"<PgServer {self.name} {self.host}:{self.port} {kind}>"

    @property
    def managed(self) -> bool:
        return self.process is not None

    def _userinfo(self) -> str:
        auth = quote(self.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        return auth

    def url(self, db: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        """SQLAlchemy URL for database *db* (``driver="postgresql"`` gives a libpq URL)."""
        return f"{driver}://{self._userinfo()}@{self.host}:{self.port}/{quote(db, safe='')}"

    def dsn(self, db: str = "postgres") -> str:
        """libpq connection URL for database *db* (asyncpg and psql accept it)."""
        return self.url(db, driver="postgresql")

    def psql(self, *sql: str, db: str = "postgres", timeout: float = 30) -> str:
        """Run each *sql* with psql and return its unaligned, tuples-only output, stripped.

        Several commands run in one psql session, each on its own (a ``CREATE
        DATABASE`` among them is not in a transaction block); each psql started
        costs tens of milliseconds, which the per-test database fixture pays often.
        """
        psql = self.bindir / "psql" if self.bindir else _psql_binary()
        argv = [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        # connect_timeout: a paused server should fail psql fast, not after *timeout*.
        dsn = self.dsn(db) + "?connect_timeout=5"
        commands = [arg for command in sql for arg in ("-c", command)]
        return run_tool([*argv, "-d", dsn, *commands], timeout=timeout).strip()

    def _proc(self, action: str) -> ServerProcess:
        if self.process is None:
            raise NotManaged(
                f"cannot {action} {self.name} at {self.host}:{self.port}: it is an external "
                "server (TENFOLD_TEST_PG_*), not one the harness started"
            )
        return self.process

    def is_running(self) -> bool:
        """Whether the server process is alive (always true for an external server)."""
        return self.process is None or self.process.is_running()

    def is_ready(self) -> bool:
        """Whether the server accepts connections right now."""
        bindir = self.bindir or find_pg_bindir()
        argv = [bindir / "pg_isready", "-q", "-h", self.host, "-p", str(self.port), "-t", "1"]
        return subprocess.run(argv, check=False, timeout=10).returncode == 0

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the server accepts connections; raise if it died or timed out."""
        proc = self.process

        def ready() -> bool:
            if proc is not None and not proc.is_running():
                raise HarnessError(f"{self.name} exited during startup:\n{proc.log_tail()}")
            return self.is_ready()

        poll_until(ready, timeout=timeout, what=f"{self.name} on port {self.port}")

    def start(self, timeout: float = 30) -> None:
        """Start the server on its port and data dir (no-op if running) and wait until ready."""
        proc = self._proc("start")
        if proc.paused:
            proc.resume()
        proc.start()
        self.wait_ready(timeout)

    def stop(self, mode: StopMode = "fast", timeout: float = 30) -> None:
        """Shut down like ``pg_ctl stop -m MODE`` ("immediate" skips the checkpoint)."""
        self._proc("stop").terminate(_STOP_SIGNALS[mode], timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster and all its backends, as if the machine died."""
        self._proc("kill").kill()

    def restart(self, mode: StopMode = "fast", timeout: float = 30) -> None:
        self.stop(mode, timeout)
        self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP every process of the server: connections hang instead of failing."""
        self._proc("pause").pause()

    def resume(self) -> None:
        self._proc("resume").resume()

    def heal(self) -> None:
        """Undo pause()/stop()/kill(): resume and start the server if needed."""
        if self.process is not None and (self.process.paused or not self.process.is_running()):
            self.start()

    def close(self) -> None:
        """Stop a managed server for good and release its port."""
        if self.process is not None:
            self.process.terminate(signal.SIGQUIT, timeout=10)
            release_port(self.port)


def _server(bindir: Path, datadir: Path, port: int, name: str, user: str | None) -> PgServer:
    process = ServerProcess(
        [bindir / "postgres", "-D", datadir],
        name=name,
        log_path=datadir.parent / f"{name}.log",
        user=user,
        cwd=datadir.parent,
    )
    return PgServer(
        host="127.0.0.1", port=port, datadir=datadir, process=process, bindir=bindir, name=name
    )


def launch_primary(workdir: Path, *, name: str = "pg-primary") -> PgServer:
    """initdb a fresh cluster in *workdir* and start it as a replication primary."""
    bindir, user = find_pg_bindir(), server_user()
    datadir, sockdir = workdir / name, workdir / "sockets"
    sockdir.mkdir(exist_ok=True)
    chown(sockdir, user)
    initdb = [bindir / "initdb", "-D", datadir, "-U", "postgres", "-A", "trust", "-E", "UTF8"]
    initdb += ["--locale=C", "--no-sync", "--no-instructions"]
    run_tool(initdb, user=user, cwd=workdir)
    port = allocate_port()
    with (datadir / "postgresql.conf").open("a") as conf:
        conf.write(_PRIMARY_CONF.format(port=port, sockdir=sockdir))
    (datadir / "pg_hba.conf").write_text(_HBA)
    server = _server(bindir, datadir, port, name, user)
    server.start()
    return server


def launch_replica(workdir: Path, primary: PgServer, *, name: str = "pg-replica") -> PgServer:
    """Clone *primary* with pg_basebackup and start it as a streaming hot standby."""
    bindir, user = find_pg_bindir(), server_user()
    datadir = workdir / name
    backup = [bindir / "pg_basebackup", "-h", primary.host, "-p", str(primary.port)]
    backup += ["-U", "postgres", "-D", datadir, "-R", "-X", "stream", "-C", "-S", REPLICATION_SLOT]
    backup += ["--checkpoint=fast", "--no-sync"]
    run_tool(backup, user=user, cwd=workdir)
    port = allocate_port()
    with (datadir / "postgresql.conf").open("a") as conf:
        conf.write(f"port = {port}\n")
    server = _server(bindir, datadir, port, name, user)
    server.start()
    return server
