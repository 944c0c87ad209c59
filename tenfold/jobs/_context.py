"""The enqueuer's context in a task message, and the worker's context while the task runs.

``enqueue`` puts ``snapshot().to_dict()`` (request id, principal, correlation
and causation ids, consistency floor, trace context) in one message header;
the worker restores it around the task, so a request and the tasks it spawned
log one request id. The principal travels here, unlike in outbound HTTP
headers, because the broker is the platform's own trusted transport.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from tenfold._context import ContextSnapshot, restore, snapshot

__all__ = ["CONTEXT_HEADER", "context_headers", "in_context", "task_context"]

T = TypeVar("T")

#: The message header the snapshot travels under (Celery keeps custom headers on retries).
CONTEXT_HEADER = "tenfold_context"


def context_headers() -> dict[str, Any]:
    """The headers that carry the current context to a task."""
    return {CONTEXT_HEADER: snapshot().to_dict()}


def task_context(request: Any) -> ContextSnapshot:
    """The context a task runs in, from its Celery ``request``.

    The causation id is the task's message id: that message is what directly
    caused this work. A task enqueued outside any request is served under its
    own message id, so its log lines still share one id.
    """
    carried = request.get(CONTEXT_HEADER)
    snap = ContextSnapshot.from_dict(carried if isinstance(carried, dict) else {})
    message_id = request.id if isinstance(request.id, str) else None
    return replace(
        snap,
        request_id=snap.request_id or message_id,
        correlation_id=snap.correlation_id or snap.request_id or message_id,
        causation_id=message_id,
    )


async def in_context(snap: ContextSnapshot, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` with ``snap`` restored (inside the task only, not the platform start)."""
    with restore(snap):
        return await coro
