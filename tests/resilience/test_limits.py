"""Timeout and Bulkhead."""

from __future__ import annotations

import asyncio

import pytest

from tenfold.resilience import PROBLEMS, Bulkhead, BulkheadFull, DeadlineExceeded, Event, Timeout
from tenfold.web import ProblemRegistry, problem_for_exception

BOUND = 5.0


async def test_timeout_raises_deadline_exceeded() -> None:
    """A call longer than the limit is cancelled and DeadlineExceeded raised from TimeoutError."""
    with pytest.raises(DeadlineExceeded) as info:
        await Timeout(0.01, name="slow").call(asyncio.sleep, 3600)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert problem_for_exception(info.value, ProblemRegistry(PROBLEMS)).status_code == 503


async def test_timeout_passes_inner_timeout_error_through() -> None:
    """A TimeoutError raised by the call itself is not mistaken for the limit expiring."""

    async def own_timeout() -> None:
        raise TimeoutError("inner")

    with pytest.raises(TimeoutError, match="inner"):
        await Timeout(60, name="t").call(own_timeout)


async def test_bulkhead_rejects_past_the_queue() -> None:
    """With every slot busy and the queue full, a further call is refused at once."""
    events: list[Event] = []
    bulkhead = Bulkhead("db", max_concurrent=2, max_waiting=1, hooks=(events.append,))
    gate = asyncio.Event()

    async def work() -> str:
        await gate.wait()
        return "done"

    tasks = [asyncio.create_task(bulkhead.call(work)) for _ in range(3)]
    await asyncio.sleep(0)
    assert (bulkhead.running, bulkhead.waiting) == (2, 1)
    with pytest.raises(BulkheadFull):
        await bulkhead.call(work)
    gate.set()
    async with asyncio.timeout(BOUND):
        assert await asyncio.gather(*tasks) == ["done"] * 3
    assert (bulkhead.running, bulkhead.waiting) == (0, 0)
    assert len(events) == 1


async def test_bulkhead_queue_wait_is_bounded() -> None:
    """A queued call that waits longer than max_wait is refused."""
    bulkhead = Bulkhead("db", max_concurrent=1, max_waiting=1, max_wait=0.01, hooks=())
    gate = asyncio.Event()
    holder = asyncio.create_task(bulkhead.call(gate.wait))
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFull):
        await bulkhead.call(gate.wait)
    assert bulkhead.waiting == 0
    gate.set()
    await holder
