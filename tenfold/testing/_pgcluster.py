"""A PostgreSQL primary with a streaming replica, and control over replication."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path

from tenfold.testing._errors import HarnessError, NotManaged
from tenfold.testing._postgres import PgServer, launch_primary, launch_replica, parse_pg_address
from tenfold.testing._process import poll_until

__all__ = ["PG_PRIMARY_ENV", "PG_REPLICA_ENV", "PgCluster"]

PG_PRIMARY_ENV = "TENFOLD_TEST_PG_PRIMARY"
PG_REPLICA_ENV = "TENFOLD_TEST_PG_REPLICA"
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LSN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")
_TIMED_OUT = "tenfold-harness: replay wait timed out"
#: Returns once the replica has replayed up to {lsn}; raises _TIMED_OUT after {ms} ms. A
#: replica that is not in recovery has no replay position: it waits, as for a lagging one.
#: The COMMIT drops the block's snapshot while it waits: replay that conflicts with a held
#: snapshot would otherwise stall for max_standby_streaming_delay, waiting on this wait.
_WAIT_REPLAYED = """DO $$
DECLARE deadline timestamptz := clock_timestamp() + interval '{ms} milliseconds';
BEGIN
  WHILE NOT coalesce(pg_last_wal_replay_lsn() >= '{lsn}', false) LOOP
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION '{timed_out}';
    END IF;
    COMMIT;
    PERFORM pg_sleep(0.005);
  END LOOP;
END $$"""


class PgCluster:
    """A primary and (usually) a hot-standby replica streaming from it.

    ``replica`` is ``None`` only when external servers are configured without
    ``TENFOLD_TEST_PG_REPLICA``.
    """

    def __init__(self, primary: PgServer, replica: PgServer | None) -> None:
        self.primary = primary
        self.replica = replica
        self.replay_paused = False

    def __repr__(self) -> str:
        return f"<PgCluster primary={self.primary!r} replica={self.replica!r}>"

    @classmethod
    def launch(cls, workdir: Path) -> PgCluster:
        """Start a new primary and replica under *workdir*."""
        primary = launch_primary(workdir)
        try:
            replica = launch_replica(workdir, primary)
        except BaseException:
            primary.close()
            raise
        return cls(primary, replica)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PgCluster | None:
        """The external servers named by ``TENFOLD_TEST_PG_*``, or ``None`` if unset."""
        environ = os.environ if environ is None else environ
        primary, replica = environ.get(PG_PRIMARY_ENV), environ.get(PG_REPLICA_ENV)
        if not primary:
            if replica:
                raise HarnessError(f"{PG_REPLICA_ENV} is set but {PG_PRIMARY_ENV} is not")
            return None

        def server(value: str, name: str) -> PgServer:
            host, port, user, password = parse_pg_address(value)
            return PgServer(host=host, port=port, user=user, password=password, name=name)

        return cls(
            server(primary, "external primary"),
            server(replica, "external replica") if replica else None,
        )

    @property
    def managed(self) -> bool:
        return self.primary.managed

    def _require_replica(self) -> PgServer:
        if self.replica is None:
            raise NotManaged(f"no replica: set {PG_REPLICA_ENV} next to {PG_PRIMARY_ENV}")
        return self.replica

    def pause_replay(self, timeout: float = 10) -> None:
        """Stop WAL replay on the replica; primary writes stay invisible there until resume."""
        replica = self._require_replica()
        replica.psql("SELECT pg_wal_replay_pause()")
        self.replay_paused = True
        # The request is asynchronous: wait until replay has really stopped.
        poll_until(
            lambda: replica.psql("SELECT pg_get_wal_replay_pause_state()") == "paused",
            timeout=timeout,
            what="WAL replay to pause",
        )

    def resume_replay(self) -> None:
        """Resume WAL replay on the replica after ``pause_replay()``."""
        self._require_replica().psql("SELECT pg_wal_replay_resume()")
        self.replay_paused = False

    def lag_bytes(self) -> int:
        """How many WAL bytes the replica has yet to replay."""
        lsn = self.primary.psql("SELECT pg_current_wal_lsn()")
        return int(
            self._require_replica().psql(
                f"SELECT greatest(0, pg_wal_lsn_diff('{lsn}', pg_last_wal_replay_lsn()))"
            )
        )

    def wait_caught_up(self, timeout: float = 10) -> None:
        """Block until the replica has replayed everything the primary has written so far."""
        self._require_replica()
        self._wait_replayed(self.primary.psql("SELECT pg_current_wal_lsn()"), timeout)

    def _wait_replayed(self, lsn: str, timeout: float) -> None:
        # One psql that waits on the replica, polling every 5 ms in SQL: a psql started
        # per poll cost more than the replay itself, on every fresh database of a test.
        replica = self._require_replica()
        if not _LSN.fullmatch(lsn):
            raise HarnessError(f"not a WAL position: {lsn!r}")
        try:
            ms = max(1, round(timeout * 1000))
            wait = _WAIT_REPLAYED.format(lsn=lsn, ms=ms, timed_out=_TIMED_OUT)
            replica.psql(wait, timeout=timeout + 30)
        except HarnessError as exc:
            if _TIMED_OUT not in str(exc):
                raise
            raise TimeoutError(
                f"timed out after {timeout}s waiting for the replica to replay up to {lsn}"
            ) from None

    def create_database(self, name: str | None = None, timeout: float = 10) -> str:
        """Create database *name* (default: a unique one) and wait until the replica has it."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")
        lsn = self.primary.psql(f'CREATE DATABASE "{name}"', "SELECT pg_current_wal_lsn()")
        if self.replica is not None:
            self._wait_replayed(lsn, timeout)
        return name

    def drop_database(self, name: str) -> None:
        """Drop database *name* on the primary, disconnecting its sessions."""
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")
        self.primary.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def heal(self) -> None:
        """Undo whatever a test broke: start/resume both servers and resume replay."""
        self.primary.heal()
        if self.replica is not None:
            self.replica.heal()
            if self.replay_paused:
                self.resume_replay()

    def close(self) -> None:
        """Stop the harness-owned servers (external ones are left alone)."""
        if self.replica is not None:
            self.replica.close()
        self.primary.close()
