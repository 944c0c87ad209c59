"""A task runs in the context of the code that enqueued it: request id, principal, ids."""

from __future__ import annotations

import json
import uuid
from typing import Any

from celery.app.task import Context
from fastapi import APIRouter

from tenfold import ContextSnapshot, Principal, create_app, restore, set_principal
from tenfold.jobs._context import CONTEXT_HEADER, task_context
from tenfold.testing import app_client
from tests.jobs import worker_app
from tests.jobs.conftest import JobsWorld


def _queue(label: str) -> str:
    # The harness's Redis is shared by the session: each test's queues are its own.
    return f"{label}-{uuid.uuid4().hex[:8]}"


def _log_lines(world: JobsWorld, *args: str) -> list[dict[str, Any]]:
    lines = []
    for line in world.log_of(*args).splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def _logged(world: JobsWorld, args: tuple[str, ...], event: str) -> list[dict[str, Any]]:
    return [line for line in _log_lines(world, *args) if line.get("event") == event]


async def test_a_task_enqueued_by_a_request_runs_with_its_request_id_and_principal(
    jobs_world: JobsWorld,
) -> None:
    """An async task enqueued in a request logs the request's id and user, and sees them."""
    queue = _queue("ctx")
    router = APIRouter()

    @router.post("/whoami/{marker}")
    async def enqueue_whoami(marker: str) -> dict[str, str]:
        set_principal("ada")
        return {"job": await worker_app.whoami.enqueue(marker, queue=queue)}

    app = create_app(platform=jobs_world.platform(), routers=[router], configure_logs=False)
    async with app_client(app) as http:
        response = await http.post("/whoami/from-http", headers={"X-Request-ID": "req-ctx-1"})
    assert response.status_code == 200
    message_id = response.json()["job"]

    jobs_world.env["TENFOLD_OBSERVABILITY__LOG_FORMAT"] = "json"
    args = ("--queues", queue, "--concurrency", "1")
    async with jobs_world.worker(*args):
        await jobs_world.wait_for_row("from-http")
    assert jobs_world.rows() == [("from-http", f"req-ctx-1/ada/{message_id}")]
    [line] = _logged(jobs_world, args, "whoami ran")
    assert line["request_id"] == "req-ctx-1"
    assert line["user_id"] == "ada"
    assert line["marker"] == "from-http"


async def test_a_sync_task_logs_the_enqueuers_context_or_its_own_message_id(
    jobs_world: JobsWorld,
) -> None:
    """A sync task logs the restored request id and user; one enqueued outside any context
    logs its own message id as the request id."""
    queue = _queue("ctx-sync")
    async with jobs_world.platform():
        carried = ContextSnapshot(request_id="req-ctx-2", principal=Principal("bob"))
        with restore(carried):
            await worker_app.whoami_sync.enqueue("restored", queue=queue)
        bare_id = await worker_app.whoami_sync.enqueue("bare", queue=queue)
        # One process takes the queue in order: this row means both sync tasks ran.
        await worker_app.mark.enqueue("sync-done", queue=queue)

    jobs_world.env["TENFOLD_OBSERVABILITY__LOG_FORMAT"] = "json"
    args = ("--queues", queue, "--concurrency", "1")
    async with jobs_world.worker(*args):
        await jobs_world.wait_for_row("sync-done")
    by_marker = {line["marker"]: line for line in _logged(jobs_world, args, "whoami_sync ran")}
    assert by_marker["restored"]["request_id"] == "req-ctx-2"
    assert by_marker["restored"]["user_id"] == "bob"
    assert by_marker["bare"]["request_id"] == bare_id
    assert "user_id" not in by_marker["bare"]


def test_a_malformed_carried_context_is_dropped_and_the_message_id_serves() -> None:
    """Ids that are not well formed, or a header that is not a mapping, leave the task
    served under its own message id, with no principal."""
    forged = {"request_id": "bad id\nlevel=error", "correlation_id": "x" * 200}
    for header in (forged, "req-1", None):
        snap = task_context(Context({"id": "msg-1", CONTEXT_HEADER: header}))
        assert (snap.request_id, snap.correlation_id, snap.causation_id) == (
            "msg-1",
            "msg-1",
            "msg-1",
        )
        assert snap.principal is None


async def test_a_retried_task_keeps_the_context_it_was_enqueued_with(
    jobs_world: JobsWorld,
) -> None:
    """Each attempt of a task retried after a transient failure logs the enqueuer's request id."""
    queue = _queue("ctx-retry")
    async with jobs_world.platform():
        with restore(ContextSnapshot(request_id="req-ctx-3", principal=Principal("cy"))):
            await worker_app.flaky.enqueue("ctx-retry", 1, queue=queue)

    jobs_world.env["TENFOLD_OBSERVABILITY__LOG_FORMAT"] = "json"
    args = ("--queues", queue, "--concurrency", "1")
    async with jobs_world.worker(*args):
        await jobs_world.wait_for_row("ctx-retry", count=2)
    attempts = _logged(jobs_world, args, "flaky ran")
    assert [(a["request_id"], a["user_id"]) for a in attempts] == [("req-ctx-3", "cy")] * 2
