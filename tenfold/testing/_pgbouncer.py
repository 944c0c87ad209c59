"""PgBouncer in transaction pooling mode in front of a harness PostgreSQL server."""

from __future__ import annotations

import signal
from pathlib import Path
from urllib.parse import quote

from tenfold.testing._binaries import find_binary
from tenfold.testing._errors import HarnessError
from tenfold.testing._ports import allocate_port, release_port
from tenfold.testing._postgres import PgServer
from tenfold.testing._process import ServerProcess, chown, poll_until, run_tool, server_user

__all__ = ["PgBouncer"]

_INI = """\
[databases]
* = host={host} port={port} user={user}{password}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir = {sockdir}
auth_type = any
admin_users = {user}
pool_mode = transaction
max_client_conn = 1000
default_pool_size = {pool_size}
ignore_startup_parameters = extra_float_digits
"""


class PgBouncer:
    """A harness-owned pgbouncer (transaction pooling, ``auth_type=any``).

    Every client user name is accepted and mapped to the upstream's user.
    In transaction mode, server-side prepared statements do not survive a
    transaction: asyncpg needs ``statement_cache_size=0`` (SQLAlchemy:
    ``connect_args={"statement_cache_size": 0, "prepared_statement_cache_size": 0}``).
    """

    def __init__(self, *, port: int, upstream: PgServer, process: ServerProcess) -> None:
        self.host, self.port = "127.0.0.1", port
        self.upstream = upstream
        self.process = process

    def __repr__(self) -> str:
        return f"<PgBouncer {self.host}:{self.port} -> {self.upstream!r}>"

    @classmethod
    def launch(cls, workdir: Path, upstream: PgServer, *, pool_size: int = 20) -> PgBouncer:
        """Write a config under *workdir*/pgbouncer and start pgbouncer in front of *upstream*."""
        binary, user = find_binary("pgbouncer"), server_user()
        confdir = workdir / "pgbouncer"
        confdir.mkdir()
        chown(confdir, user)
        port = allocate_port()
        password = f" password={upstream.password}" if upstream.password else ""
        ini = confdir / "pgbouncer.ini"
        ini.write_text(
            _INI.format(
                host=upstream.host,
                port=upstream.port,
                user=upstream.user,
                password=password,
                listen_port=port,
                sockdir=confdir,
                pool_size=pool_size,
            )
        )
        # pgbouncer refuses to run as root, so it runs as the server user.
        process = ServerProcess(
            [binary, ini], name="pgbouncer", log_path=workdir / "pgbouncer.log", user=user
        )
        bouncer = cls(port=port, upstream=upstream, process=process)
        bouncer.start()
        return bouncer

    def url(self, db: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        """SQLAlchemy URL for database *db* through pgbouncer."""
        user = quote(self.upstream.user, safe="")
        return f"{driver}://{user}@{self.host}:{self.port}/{quote(db, safe='')}"

    def dsn(self, db: str = "postgres") -> str:
        return self.url(db, driver="postgresql")

    def admin(self, command: str) -> str:
        """Run an admin-console command (``SHOW POOLS``, ``SHOW CONFIG``) and return its rows."""
        psql = self.upstream.bindir / "psql" if self.upstream.bindir else find_binary("psql")
        return run_tool([psql, "-X", "-A", "-t", "-d", self.dsn("pgbouncer"), "-c", command])

    def _ready(self) -> bool:
        if not self.process.is_running():
            raise HarnessError(f"pgbouncer exited during startup:\n{self.process.log_tail()}")
        try:
            self.admin("SHOW VERSION")
        except HarnessError:
            return False
        return True

    def is_running(self) -> bool:
        return self.process.is_running()

    def start(self, timeout: float = 10) -> None:
        if self.process.paused:
            self.process.resume()
        self.process.start()
        poll_until(self._ready, timeout=timeout, what=f"pgbouncer on port {self.port}")

    def stop(self, timeout: float = 10) -> None:
        """SIGINT: pgbouncer closes client connections at once."""
        self.process.terminate(signal.SIGINT, timeout=timeout)

    def kill(self) -> None:
        self.process.kill()

    def pause(self) -> None:
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()

    def heal(self) -> None:
        if self.process.paused or not self.process.is_running():
            self.start()

    def close(self) -> None:
        self.process.kill()
        release_port(self.port)
