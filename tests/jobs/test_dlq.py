"""The dead-letter queue: a task that fails for good is kept, listed, retried and purged."""

from __future__ import annotations

import itertools
import json
import uuid

from tests.jobs import worker_app
from tests.jobs.conftest import JobsWorld


def _queue(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def _dlq(world: JobsWorld, *args: str) -> object:
    code, out, err = await world.cli("jobs", "dlq", *args, "--json")
    assert code == 0, err
    return json.loads(out)


async def test_a_poison_task_is_dead_lettered_and_retried_until_it_is_fixed(
    jobs_world: JobsWorld,
) -> None:
    """max_retries=2: three attempts, then one dead letter with attempts=3 and the request id;
    `dlq retry` runs it again (three more attempts, dead again); fixed, a retry succeeds."""
    queue = _queue("poison")
    worker_args = ("--queues", queue, "--concurrency", "1")
    async with jobs_world.platform():
        await worker_app.poison.enqueue("p1", queue=queue)
    async with jobs_world.worker(*worker_args):
        await jobs_world.wait_for_dead_letters(1)
        letters = await _dlq(jobs_world, "list")
        assert isinstance(letters, list)
        assert len(letters) == 1
        (letter,) = letters
        assert letter["task"] == worker_app.poison.name
        assert letter["attempts"] == 3
        assert letter["queue"] == queue
        assert letter["exception"] == "LookupError: p1 is poison"
        assert json.loads(letter["args"]) == {"args": ["p1"], "kwargs": {}}
        assert letter["request_id"] == letter["message_id"]  # enqueued outside any request
        assert [m for m, _ in jobs_world.rows()].count("p1") == 3

        shown = await _dlq(jobs_world, "show", str(letter["id"]))
        assert isinstance(shown, dict)
        assert "LookupError: p1 is poison" in shown["traceback"]

        retried = await _dlq(jobs_world, "retry", str(letter["id"]))
        assert isinstance(retried, dict)
        assert [r["id"] for r in retried["retried"]] == [letter["id"]]
        await jobs_world.wait_for_row("p1", count=6)
        await jobs_world.wait_for_dead_letters(1)
        (again,) = await _dlq(jobs_world, "list")  # type: ignore[misc]
        assert again["attempts"] == 3  # a new count, not 6
        assert again["id"] != letter["id"]
        assert again["request_id"] == letter["request_id"]  # the context it failed in

        await worker_app.mark.enqueue("fixed-p1", queue=queue)  # the fix: a flag row
        await jobs_world.wait_for_row("fixed-p1")
        await _dlq(jobs_world, "retry", "--all")
        await jobs_world.wait_for_row("p1", count=7)
        await worker_app.mark.enqueue("last", queue=queue)
        await jobs_world.wait_for_row("last")
    assert await _dlq(jobs_world, "list") == []
    assert [m for m, _ in jobs_world.rows()].count("p1") == 7


async def test_a_bug_is_dead_lettered_at_once(jobs_world: JobsWorld) -> None:
    """An error retry_on does not select: one attempt, one dead letter, attempts=1."""
    queue = _queue("bug")
    async with jobs_world.platform():
        await worker_app.broken.enqueue("bug", queue=queue)
    async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
        await jobs_world.wait_for_dead_letters(1)
    (letter,) = await _dlq(jobs_world, "list")  # type: ignore[misc]
    assert (letter["attempts"], letter["exception"]) == (1, "ValueError: bug is broken")


async def test_purge_and_missing_ids(jobs_world: JobsWorld) -> None:
    queue = _queue("purge")
    async with jobs_world.platform() as platform:
        await worker_app.broken.enqueue("a", queue=queue)
        await worker_app.broken.enqueue("b", queue=queue)
        async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
            await jobs_world.wait_for_dead_letters(2)
        assert await platform.jobs.dead_letters.count() == 2
        code, _, err = await jobs_world.cli("jobs", "dlq", "show", "999999")
        assert code == 1
        assert "no dead letter 999999" in err
        code, _, err = await jobs_world.cli("jobs", "dlq", "retry", "999999")
        assert code == 1
        assert "no dead letter 999999" in err
        assert await _dlq(jobs_world, "purge", "--yes") == {"purged": 2}
        assert await platform.jobs.dead_letters.count() == 0
        code, _, _ = await jobs_world.cli("jobs", "dlq", "purge")  # no --yes, no terminal
        assert code != 0


async def test_dead_letters_degrade_readiness_without_failing_it(jobs_world: JobsWorld) -> None:
    queue = _queue("ready")
    async with jobs_world.platform() as platform:
        report = await platform.health.report()
        assert report.checks["jobs_dead_letters"]["status"] == "ok"
        await worker_app.broken.enqueue("r", queue=queue)
        async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
            await jobs_world.wait_for_dead_letters(1)
        check = await platform.jobs.dead_letter_check()
    assert check == {"status": "degraded", "dead_letters": 1}


async def test_retries_wait_at_least_their_backoff(jobs_world: JobsWorld) -> None:
    """Attempt times are increasing and each gap is at least backoff.delay(attempt)."""
    queue = _queue("backoff")
    async with jobs_world.platform():
        await worker_app.slow_retry.enqueue("b", queue=queue)
    async with jobs_world.worker("--queues", queue, "--concurrency", "1"):
        await jobs_world.wait_for_dead_letters(1)
    stamps = [float(t) for m, t in jobs_world.rows() if m == "b"]
    assert len(stamps) == 4
    backoff = worker_app.slow_retry.options.backoff
    for attempt, (before, after) in enumerate(itertools.pairwise(stamps), start=1):
        assert after - before >= backoff.delay(attempt)


async def test_the_broker_check_degrades_readiness_when_the_broker_is_down(
    jobs_world: JobsWorld,
) -> None:
    async with jobs_world.platform() as platform:
        assert await platform.jobs.broker_check() == {"broker": "redis"}
        jobs_world.redis.stop()
        try:
            report = await platform.health.report()
        finally:
            jobs_world.redis.start()
    assert report.checks["jobs_broker"]["status"] == "failing"
    assert report.checks["jobs_broker"]["critical"] is False
