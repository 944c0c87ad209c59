"""The worker runs each (entry, due time) beat sent once, and refuses a deposed leader's."""

from __future__ import annotations

import json
import uuid

from celery.app.task import Context

from tenfold.jobs._fence import DUE_HEADER, ENTRY_HEADER, TOKEN_HEADER, BeatRun, Fence
from tenfold.redis import RedisHub
from tests.jobs import worker_app
from tests.jobs.conftest import JobsWorld, redis_client

DUE = 1_800_000_060.0


def _entry() -> str:
    # The harness's Redis is shared by the session: each test's entries are its own.
    return f"entry-{uuid.uuid4().hex[:8]}"


async def test_a_due_time_runs_once_and_an_older_token_not_at_all(jobs_world: JobsWorld) -> None:
    """The first message for an (entry, due) runs, and runs again when redelivered; another
    message for it is a duplicate; a token below the entry's highest is stale."""
    entry, other = _entry(), _entry()
    async with jobs_world.platform() as platform:
        fence = Fence(platform.get(RedisHub), "app", ttl=60)
        assert await fence.admit(BeatRun(entry, DUE, 5), "m1") == "run"
        assert await fence.admit(BeatRun(entry, DUE, 6), "m2") == "duplicate"
        assert await fence.admit(BeatRun(entry, DUE, 5), "m1") == "run"  # redelivered
        assert await fence.admit(BeatRun(entry, DUE + 60, 6), "m3") == "run"
        assert await fence.admit(BeatRun(entry, DUE + 120, 5), "m4") == "stale"
        assert await fence.admit(BeatRun(entry, DUE + 120, 6), "m5") == "run"
        assert await fence.admit(BeatRun(other, DUE, 1), "m6") == "run"  # entries are apart
        redis = redis_client(jobs_world.redis)
        for key in fence.keys(BeatRun(entry, DUE, 5)):
            assert 0 < redis.pttl(key) <= 60_000


def test_only_a_message_with_all_three_headers_is_a_beat_run() -> None:
    """Headers that are missing or of the wrong type make a message one beat did not send."""
    good = {ENTRY_HEADER: "e", DUE_HEADER: DUE, TOKEN_HEADER: 3}
    assert BeatRun.of(Context(good)) == BeatRun("e", DUE, 3)
    for broken in (
        {TOKEN_HEADER: 3},
        {**good, TOKEN_HEADER: "3"},
        {**good, TOKEN_HEADER: True},
        {**good, DUE_HEADER: "soon"},
        {**good, ENTRY_HEADER: ""},
    ):
        assert BeatRun.of(Context(broken)) is None


def _refusals(world: JobsWorld, args: tuple[str, ...]) -> list[dict[str, object]]:
    lines = [json.loads(li) for li in world.log_of(*args).splitlines() if li.startswith("{")]
    return [line for line in lines if line.get("event") == "beat_duplicate_refused"]


async def test_the_worker_acknowledges_a_duplicate_without_running_it(
    jobs_world: JobsWorld,
) -> None:
    """Two messages for one (entry, due) run once; a later due time sent with an older token
    does not run; each refusal is logged; a beat run that is retried runs again."""
    queue, entry = f"fence-{uuid.uuid4().hex[:8]}", _entry()
    async with jobs_world.platform() as platform:
        jobs = platform.jobs
        retried = BeatRun(_entry(), DUE, 1).headers()
        await jobs.enqueue(worker_app.flaky, ["retried", 1], queue=queue, headers=retried)
        for marker, run in (
            ("tick", BeatRun(entry, DUE, 7)),
            ("tick", BeatRun(entry, DUE, 8)),  # a duplicate, from the next tenure
            ("tick", BeatRun(entry, DUE + 60, 8)),
            ("late", BeatRun(entry, DUE + 120, 7)),  # the deposed tenure, after the next
        ):
            await jobs.enqueue(worker_app.mark, [marker], queue=queue, headers=run.headers())
        # One process takes the queue in order: this row means the others were handled.
        await worker_app.mark.enqueue("done", queue=queue)
    jobs_world.env["TENFOLD_OBSERVABILITY__LOG_FORMAT"] = "json"
    args = ("--queues", queue, "--concurrency", "1")
    async with jobs_world.worker(*args):
        await jobs_world.wait_for_row("done")
        await jobs_world.wait_for_row("retried", count=2)
    markers = [marker for marker, _ in jobs_world.rows()]
    assert [m for m in markers if m != "retried"] == ["tick", "tick", "done"]
    assert markers.count("retried") == 2
    refused = _refusals(jobs_world, args)
    assert [(r["reason"], r["token"], r["due"]) for r in refused] == [
        ("duplicate", 8, DUE),
        ("stale", 7, DUE + 120),
    ]
