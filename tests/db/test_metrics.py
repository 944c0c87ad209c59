"""Pool and query metrics reach the application's Metrics."""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tenfold.observability import Metrics

from .conftest import MakeDatabase


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.render()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


async def test_pool_gauges_acquire_histogram_and_query_durations(
    make_database: MakeDatabase,
) -> None:
    """Scrapes show pool in-use/idle/overflow/waiters per pool, acquire times and query times."""
    metrics = Metrics(namespace="tenfold")
    db = await make_database(metrics=metrics)
    async with db.session() as write:
        await write.execute(sa.text("SELECT 1"))
        samples = _samples(metrics)
        assert samples[("tenfold_db_pool_in_use", (("pool", "primary"),))] == 1
    async with db.session(readonly=True) as read:
        await read.execute(sa.text("SELECT 1"))
    samples = _samples(metrics)
    for gauge in ("in_use", "idle", "overflow", "waiters", "size"):
        assert (f"tenfold_db_pool_{gauge}", (("pool", "replica0"),)) in samples
    assert samples[("tenfold_db_pool_in_use", (("pool", "primary"),))] == 0
    assert samples[("tenfold_db_pool_acquire_seconds_count", (("pool", "primary"),))] >= 1
    assert samples[("tenfold_db_pool_acquire_seconds_count", (("pool", "replica0"),))] >= 1
    assert samples[("tenfold_db_replica_healthy", (("pool", "replica0"),))] == 1
    assert samples[("tenfold_db_query_duration_seconds_count", (("role", "primary"),))] >= 1
    assert samples[("tenfold_db_query_duration_seconds_count", (("role", "replica"),))] >= 1

    await db.stop()  # unregisters, so a restarted Database can register again
    assert not any(name.startswith("tenfold_db_pool") for name, _ in _samples(metrics))
