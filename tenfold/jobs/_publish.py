"""Sending to a Redis broker from the event loop: Celery's message, one async ``LPUSH``.

kombu publishes with blocking sockets, so an ``async def`` caller must hop to
a thread for every message (Celery's ``apply_async`` costs about half a
millisecond here, and the hop as much again on a busy machine). On a Redis
broker, a message is one ``LPUSH`` of a JSON envelope onto the queue's list
(for its priority step). ``RedisPublisher`` builds the same message Celery
would (``app.amqp.as_task_v2``: protocol 2 headers and body, serialised by
kombu), wraps it the way kombu's Redis channel does, and pushes it with the
platform's async Redis client: no thread, and a pipeline for many messages.

A worker cannot tell these messages from ``apply_async``'s; the jobs tests run
every message through real ``tenfold worker`` processes.
"""

from __future__ import annotations

import base64
import bisect
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celery.utils.saferepr import saferepr
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as json_dumps

from tenfold._errors import DependencyUnavailable
from tenfold.jobs._celery import PRIORITY_STEPS, redis_lists
from tenfold.redis import REDIS_ERRORS

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from celery import Celery

__all__ = ["RedisPublisher"]

#: kombu's virtual transports keep one body encoding: base64 of the serialised body.
_BODY_ENCODING = "base64"
#: Persistent, as kombu marks every message it publishes.
_DELIVERY_MODE = 2


def list_for(queue: str, priority: int) -> str:
    """The Redis list a message of kombu ``priority`` for ``queue`` is pushed onto: that of
    the largest step at or below it, as kombu's Redis channel picks it."""
    return redis_lists(queue)[bisect.bisect_right(PRIORITY_STEPS, priority) - 1]


class RedisPublisher:
    """Builds Celery protocol-2 messages and ``LPUSH``es them with an async client."""

    def __init__(self, app: Celery, client: aioredis.Redis, *, owns_client: bool) -> None:
        self.app = app
        self.client = client
        self._owns_client = owns_client

    def __repr__(self) -> str:
        return "<RedisPublisher>"

    def envelope(
        self,
        message_id: str,
        name: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        queue: str,
        priority: int,
        countdown: float | None,
        headers: dict[str, Any],
    ) -> tuple[str, str]:
        """(list name, payload) of one message, exactly as kombu would push it."""
        # Sent from inside a task: the workflow ids Celery would set.
        parent = self.app.current_worker_task
        root_id = parent_id = None
        if parent is not None:
            root_id = parent.request.root_id or parent.request.id
            parent_id = parent.request.id
        built = self.app.amqp.as_task_v2(
            message_id,
            name,
            list(args),
            kwargs,
            countdown=countdown or None,
            reply_to=self.app.thread_oid,
            ignore_result=self.app.conf.task_ignore_result,
            argsrepr=saferepr(tuple(args)),
            kwargsrepr=saferepr(kwargs),
            root_id=root_id,
            parent_id=parent_id,
        )
        message_headers = dict(built.headers)
        message_headers.update(headers)
        content_type, content_encoding, body = serialize(built.body, serializer="json")
        raw = body.encode(content_encoding) if isinstance(body, str) else body
        properties = dict(built.properties)
        properties.update(
            delivery_mode=_DELIVERY_MODE,
            delivery_info={"exchange": "", "routing_key": queue},
            priority=priority,
            body_encoding=_BODY_ENCODING,
            delivery_tag=str(uuid.uuid4()),
        )
        payload = {
            "body": base64.b64encode(raw).decode("ascii"),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": message_headers,
            "properties": properties,
        }
        return list_for(queue, priority), json_dumps(payload)

    async def push(self, messages: Sequence[tuple[str, str]]) -> None:
        """``LPUSH`` each (list, payload); several in one pipeline round trip."""
        try:
            if len(messages) == 1:
                key, payload = messages[0]
                await self.client.lpush(key, payload)
                return
            async with self.client.pipeline(transaction=False) as pipe:
                for key, payload in messages:
                    pipe.lpush(key, payload)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            raise DependencyUnavailable(
                f"the jobs broker is unreachable ({type(exc).__name__})", dependency="broker"
            ) from exc

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()
