"""Primary/replica routing, read-your-writes by LSN, lag ejection and health."""

from __future__ import annotations

import sqlalchemy as sa

from tenfold import ContextSnapshot, HealthSettings, current_consistency_token, restore, snapshot
from tenfold.health import HealthRegistry
from tenfold.testing import PgCluster, allocate_port, release_port

from .conftest import MakeDatabase, in_recovery, wait_for


async def test_reads_go_to_the_replica_and_writes_to_the_primary(
    make_database: MakeDatabase,
) -> None:
    """A read session runs on the replica and a write session on the primary."""
    db = await make_database()
    async with db.session(readonly=True) as read:
        assert await in_recovery(read)
        assert read.role == "replica"
    async with db.session() as write:
        assert not await in_recovery(write)
        await write.execute(sa.text("INSERT INTO notes (body) VALUES ('routed')"))


async def test_reads_go_to_the_primary_without_a_healthy_replica(
    make_database: MakeDatabase,
) -> None:
    """With every replica ejected, reads are served by the primary."""
    db = await make_database()
    db.router.replicas[0].state.eject("test")
    async with db.session(readonly=True) as read:
        assert not await in_recovery(read)


async def test_round_robin_spreads_reads_over_replicas(
    make_database: MakeDatabase, pg_cluster: PgCluster, pg_db: str
) -> None:
    """Two replica URLs (the same server twice) each get half of the reads."""
    url = pg_cluster.replica.url(pg_db)
    db = await make_database(replicas=[url, url])
    seen = []
    for _ in range(6):
        async with db.session(readonly=True) as read:
            seen.append(read.endpoint_name)
    assert seen.count("replica0") == 3
    assert seen.count("replica1") == 3


async def test_least_busy_prefers_the_idle_replica(
    make_database: MakeDatabase, pg_cluster: PgCluster, pg_db: str
) -> None:
    """With least_busy, a replica holding an open session is passed over."""
    url = pg_cluster.replica.url(pg_db)
    db = await make_database(replicas=[url, url], replica_policy="least_busy")
    async with db.session(readonly=True) as busy:
        for _ in range(4):
            async with db.session(readonly=True) as other:
                assert other.endpoint_name != busy.endpoint_name


async def test_writer_reads_its_write_while_replay_is_paused(
    make_database: MakeDatabase, pg_cluster: PgCluster
) -> None:
    """After a commit, the writer's reads see the write though the replica lags; others don't."""
    db = await make_database(stale_reads="replica")
    pg_cluster.pause_replay()
    try:
        with restore(ContextSnapshot(request_id="writer")):
            async with db.session() as write:
                note_id = await write.scalar(
                    sa.text("INSERT INTO notes (body) VALUES ('mine') RETURNING id")
                )
            assert current_consistency_token() is not None
            async with db.session(readonly=True) as read:
                body = await read.scalar(
                    sa.text("SELECT body FROM notes WHERE id = :id"), {"id": note_id}
                )
                assert body == "mine"
                assert not await in_recovery(read)  # the replica could not have it yet
            writer = snapshot()  # what the writer's client carries: its token

        # Another client (no token) is served by the lagging replica: stale, by policy.
        with restore(ContextSnapshot(request_id="other")):
            async with db.session(readonly=True) as read:
                assert await in_recovery(read)
                missing = await read.scalar(
                    sa.text("SELECT body FROM notes WHERE id = :id"), {"id": note_id}
                )
                assert missing is None
    finally:
        pg_cluster.resume_replay()

    # Once the replica has replayed past the token, the writer reads from it again.
    pg_cluster.wait_caught_up()
    await db.check_replicas()
    assert writer.consistency_lsn is not None
    with restore(writer):
        async with db.session(readonly=True) as read:
            assert await in_recovery(read)
            body = await read.scalar(
                sa.text("SELECT body FROM notes WHERE id = :id"), {"id": note_id}
            )
            assert body == "mine"


async def test_stale_reads_primary_sends_other_clients_to_the_primary_while_lagging(
    make_database: MakeDatabase, pg_cluster: PgCluster
) -> None:
    """With stale_reads=primary, a read without a token avoids a replica known to lag."""
    db = await make_database(stale_reads="primary")
    pg_cluster.pause_replay()
    try:
        async with db.session() as write:
            await write.execute(sa.text("INSERT INTO notes (body) VALUES ('lagging')"))
        await db.check_replicas()
        assert db.router.replicas[0].state.lag_bytes
        assert db.router.replicas[0].state.healthy  # under max_lag: still admitted
        with restore(ContextSnapshot(request_id="other")):
            async with db.session(readonly=True) as read:
                assert not await in_recovery(read)
    finally:
        pg_cluster.resume_replay()


async def test_lag_over_max_lag_ejects_the_replica_and_degrades_readiness(
    make_database: MakeDatabase, pg_cluster: PgCluster
) -> None:
    """A replica further behind than max_lag_bytes is ejected; readiness turns degraded."""
    health = HealthRegistry(HealthSettings(cache_ttl=0))
    db = await make_database(max_lag_bytes=1024, health=health)
    assert (await health.report()).status == "ok"
    pg_cluster.pause_replay()
    try:
        async with db.session() as write:
            await write.execute(
                sa.text(
                    "INSERT INTO notes (body) SELECT repeat('x', 100) FROM generate_series(1, 200)"
                )
            )
        await db.check_replicas()
        replica = db.router.replicas[0]
        assert not replica.state.healthy
        assert "max_lag_bytes" in (replica.state.reason or "")
        report = await health.report()
        assert report.status == "degraded"
        assert report.checks["db.replica0"]["status"] == "failing"
        assert report.checks["db.primary"]["status"] == "ok"
        async with db.session(readonly=True) as read:
            assert not await in_recovery(read)
    finally:
        pg_cluster.resume_replay()
    pg_cluster.wait_caught_up()
    await db.check_replicas()
    assert db.router.replicas[0].state.healthy
    assert (await health.report()).status == "ok"


async def test_a_replica_lagging_under_max_lag_is_degraded_and_still_serves(
    make_database: MakeDatabase, pg_cluster: PgCluster
) -> None:
    """Behind by more than degraded_lag_seconds but under max_lag: degraded, ready, serving."""
    health = HealthRegistry(HealthSettings(cache_ttl=0))
    db = await make_database(degraded_lag_seconds=0.0, health=health)
    replica = db.router.replicas[0]

    async def caught_up() -> bool:
        await db.check_replicas()
        return replica.state.lag_bytes == 0

    await wait_for(caught_up)
    assert (await health.report()).status == "ok"
    pg_cluster.pause_replay()
    try:
        async with db.session() as write:
            await write.execute(sa.text("INSERT INTO notes (body) VALUES ('behind')"))
        await db.check_replicas()
        assert replica.state.healthy  # under max_lag: still admitted
        report = await health.report()
        assert report.status == "degraded"
        assert report.http_status == 200
        entry = report.checks["db.replica0"]
        assert entry["status"] == "degraded"
        assert entry["lag_bytes"] > 0
        assert "degraded_lag_seconds" in entry["reason"]
        with restore(ContextSnapshot(request_id="other")):
            async with db.session(readonly=True) as read:
                assert await in_recovery(read)  # tokenless reads still go to the replica
    finally:
        pg_cluster.resume_replay()
    await wait_for(caught_up)
    assert (await health.report()).status == "ok"


async def test_idle_replica_is_not_lagging_by_seconds(
    make_database: MakeDatabase, pg_cluster: PgCluster
) -> None:
    """An aging replay timestamp on a caught-up replica is not lag (idle primary)."""
    db = await make_database(max_lag_seconds=0.0)
    replica = db.router.replicas[0]
    pg_cluster.wait_caught_up()

    async def caught_up_and_admitted() -> bool:
        await db.check_replicas()
        return replica.state.lag_bytes == 0 and replica.state.healthy

    await wait_for(caught_up_and_admitted)
    assert replica.state.lag_seconds == 0.0
    async with db.session(readonly=True) as read:
        age = await read.scalar(
            sa.text("SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())")
        )
    assert age > 0  # the timestamp did age: counting it would have ejected the replica


async def test_a_saturated_pool_does_not_look_like_an_unreachable_replica(
    make_database: MakeDatabase,
) -> None:
    """Checks use their own connection, so a replica whose pool is exhausted stays admitted."""
    db = await make_database(pool_size=1, max_overflow=0, pool_timeout=0.2)
    async with db.session(readonly=True) as busy:
        assert await in_recovery(busy)  # holds the replica pool's only connection now
        await db.check_replicas()
        assert db.router.replicas[0].state.healthy


async def test_the_background_checker_ejects_and_readmits_on_its_own(
    make_database: MakeDatabase, pg_cluster: PgCluster
) -> None:
    """With a short interval, the checker task ejects a lagging replica and re-admits it."""
    db = await make_database(max_lag_bytes=1024, replica_check_interval=0.05)
    replica = db.router.replicas[0]

    async def ejected() -> bool:
        return not replica.state.healthy

    async def admitted() -> bool:
        return replica.state.healthy

    pg_cluster.pause_replay()
    try:
        async with db.session() as write:
            await write.execute(
                sa.text(
                    "INSERT INTO notes (body) SELECT repeat('y', 100) FROM generate_series(1, 200)"
                )
            )
        await wait_for(ejected)
    finally:
        pg_cluster.resume_replay()
    await wait_for(admitted)


async def test_a_read_session_checks_out_at_its_first_statement(
    make_database: MakeDatabase,
) -> None:
    """A read takes its connection with its first statement, timed and counted, until it ends."""
    db = await make_database(pool_size=1, max_overflow=0)
    replica = db.router.replicas[0]
    acquired = replica.acquire_histogram.total
    async with db.session(readonly=True) as read:
        assert read.role == "replica"
        assert db.pool_stats()["replica0"].in_use == 0
        assert await in_recovery(read)
        assert db.pool_stats()["replica0"].in_use == 1
        await read.scalar(sa.text("SELECT 1"))  # the same connection: no second checkout
        assert replica.acquire_histogram.total == acquired + 1
    assert db.pool_stats()["replica0"].in_use == 0
    assert replica.in_flight == 0


async def test_a_replica_refusing_connections_sends_the_read_to_the_primary(
    make_database: MakeDatabase, pg_cluster: PgCluster, pg_db: str
) -> None:
    """A read whose replica refuses the checkout ejects it and runs on the primary instead."""
    port = allocate_port()
    try:
        closed = pg_cluster.replica.url(pg_db).replace(f":{pg_cluster.replica.port}/", f":{port}/")
        db = await make_database(replicas=[closed])
        replica = db.router.replicas[0]
        replica.state.admit()  # as if it had answered the last check
        async with db.session(readonly=True) as read:
            assert read.role == "replica"
            assert not await in_recovery(read)
            assert read.role == "primary"
        assert not replica.state.healthy
        assert "connection error" in (replica.state.reason or "")
        assert replica.in_flight == 0
        assert db.router.primary.in_flight == 0
    finally:
        release_port(port)
