"""The harness PostgreSQL primary and replica, and the helpers that break them."""

from __future__ import annotations

import asyncpg
import pytest

from tenfold.testing import HarnessError, PgCluster

pytestmark = pytest.mark.postgres


def test_replica_is_in_recovery_and_sees_primary_writes(
    pg_cluster: PgCluster, fresh_pg_database: str
) -> None:
    """The replica is a hot standby that serves rows written on the primary once caught up."""
    db = fresh_pg_database
    assert pg_cluster.replica is not None
    assert pg_cluster.replica.psql("SELECT pg_is_in_recovery()") == "t"
    assert pg_cluster.primary.psql("SELECT pg_is_in_recovery()") == "f"
    pg_cluster.primary.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (42)", db=db)
    pg_cluster.wait_caught_up()
    assert pg_cluster.replica.psql("SELECT v FROM t", db=db) == "42"
    assert pg_cluster.lag_bytes() == 0


def test_paused_replay_hides_rows_until_resumed(
    pg_cluster: PgCluster, fresh_pg_database: str
) -> None:
    """A row inserted while replay is paused stays invisible on the replica until resume."""
    db = fresh_pg_database
    assert pg_cluster.replica is not None
    pg_cluster.primary.psql("CREATE TABLE t (v int)", db=db)
    pg_cluster.wait_caught_up()
    pg_cluster.pause_replay()
    pg_cluster.primary.psql("INSERT INTO t VALUES (1)", db=db)
    with pytest.raises(TimeoutError):
        pg_cluster.wait_caught_up(timeout=0.5)
    assert pg_cluster.replica.psql("SELECT count(*) FROM t", db=db) == "0"
    pg_cluster.resume_replay()
    pg_cluster.wait_caught_up()
    assert pg_cluster.replica.psql("SELECT count(*) FROM t", db=db) == "1"


def test_create_database_is_visible_on_replica(pg_cluster: PgCluster) -> None:
    """create_database returns only once the new database accepts queries on the replica."""
    assert pg_cluster.replica is not None
    name = pg_cluster.create_database()
    try:
        assert pg_cluster.replica.psql("SELECT current_database()", db=name) == name
    finally:
        pg_cluster.drop_database(name)


@pytest.mark.parametrize("mode", ["fast", "immediate", "kill"])
def test_primary_restarts_on_same_port_and_keeps_data(
    pg_cluster: PgCluster, fresh_pg_database: str, mode: str
) -> None:
    """After a clean stop, an immediate stop or a SIGKILL the primary restarts with its data."""
    primary, db = pg_cluster.primary, fresh_pg_database
    port = primary.port
    primary.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (7)", db=db)
    if mode == "kill":
        primary.kill()
    else:
        primary.stop(mode)  # type: ignore[arg-type]
    assert not primary.is_running()
    with pytest.raises(HarnessError):
        primary.psql("SELECT 1")
    primary.start()
    assert primary.port == port
    assert primary.psql("SELECT v FROM t", db=db) == "7"


def test_replica_resumes_streaming_after_restarts(
    pg_cluster: PgCluster, fresh_pg_database: str
) -> None:
    """A restarted replica catches up with writes made while it, then the primary, was down."""
    db, replica = fresh_pg_database, pg_cluster.replica
    assert replica is not None
    pg_cluster.primary.psql("CREATE TABLE t (v int)", db=db)
    replica.kill()
    pg_cluster.primary.psql("INSERT INTO t VALUES (1)", db=db)
    replica.start()
    pg_cluster.primary.restart()
    pg_cluster.primary.psql("INSERT INTO t VALUES (2)", db=db)
    pg_cluster.wait_caught_up()
    assert replica.psql("SELECT count(*) FROM t", db=db) == "2"


async def test_paused_primary_hangs_clients_until_resumed(pg_cluster: PgCluster) -> None:
    """A SIGSTOPped primary makes connection attempts time out; after resume they succeed."""
    primary = pg_cluster.primary
    primary.pause()
    try:
        with pytest.raises(TimeoutError):
            await asyncpg.connect(primary.dsn(), timeout=0.5)
    finally:
        primary.resume()
    conn = await asyncpg.connect(primary.dsn(), timeout=10)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


def test_broken_servers_are_healed_between_tests(pg_cluster: PgCluster) -> None:
    """heal() restarts a stopped primary, thaws a paused replica and resumes replay."""
    assert pg_cluster.replica is not None
    pg_cluster.pause_replay()
    pg_cluster.replica.pause()
    pg_cluster.primary.stop("immediate")
    pg_cluster.heal()
    assert pg_cluster.primary.psql("SELECT 1") == "1"
    assert pg_cluster.replica.psql("SELECT pg_get_wal_replay_pause_state()") == "not paused"


async def test_url_works_with_asyncpg(pg_cluster: PgCluster, fresh_pg_database: str) -> None:
    """dsn() connects asyncpg to the requested database on both servers."""
    assert pg_cluster.replica is not None
    for server in (pg_cluster.primary, pg_cluster.replica):
        conn = await asyncpg.connect(server.dsn(fresh_pg_database), timeout=10)
        try:
            assert await conn.fetchval("SELECT current_database()") == fresh_pg_database
        finally:
            await conn.close()
    assert pg_cluster.primary.url(fresh_pg_database).startswith("postgresql+asyncpg://postgres@")
