"""The Celery app a platform's jobs run on, configured from ``TENFOLD_JOBS__*``.

Each setting below is one of the safe defaults docs/jobs.md explains; what
Celery would otherwise do is in the comment beside it.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery

from tenfold._errors import ConfigurationError
from tenfold._settings import RedisSettings
from tenfold.jobs._memory import QUEUES_OPTION
from tenfold.jobs._settings import JobsSettings

__all__ = [
    "DEFAULT_PRIORITY",
    "MAX_PRIORITY",
    "PRIORITY_STEPS",
    "REDIS_SEP",
    "broker_of",
    "broker_priority",
    "celery_app",
    "redis_lists",
]

#: tenfold's priorities run from 0 to this, the most urgent, on every broker.
MAX_PRIORITY = 9
#: The priority of a message given none: below urgent work, above deferred work.
DEFAULT_PRIORITY = 5

#: kombu's Redis transport emulates priorities with one list per step; a message's
#: (inverted, see docs/jobs.md "Priorities") priority goes to the list of its step.
PRIORITY_STEPS = (0, 3, 6, 9)
#: Between a queue's name and its step in the list names: ``media``, ``media:3``, ...
REDIS_SEP = ":"


def redis_lists(queue: str) -> list[str]:
    """The Redis lists holding ``queue``'s waiting messages, most urgent first."""
    return [queue if step == 0 else f"{queue}{REDIS_SEP}{step}" for step in PRIORITY_STEPS]


def broker_priority(kind: str, priority: int) -> int:
    """The message priority to send to broker ``kind`` for tenfold's ``priority`` (9: most urgent).

    RabbitMQ delivers higher priorities first, as tenfold counts. kombu's Redis
    transport pops its lists in the order of ``PRIORITY_STEPS``, so there 0 is
    the most urgent: the scale is turned round.
    """
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be within 0..{MAX_PRIORITY}, got {priority}")
    return MAX_PRIORITY - priority if kind == "redis" else priority


def broker_of(settings: JobsSettings, redis: RedisSettings) -> tuple[str, str]:
    """(kind, URL) of the broker the settings choose; ``ConfigurationError`` naming the variable."""
    kind = settings.broker
    if kind == "auto":
        kind = "redis" if settings.broker_url is not None or redis.url is not None else "memory"
    if kind == "memory":
        return kind, "memory://localhost/"
    if settings.broker_url is not None:
        url = settings.broker_url.get_secret_value()
        if settings.broker == "auto" and not url.startswith(("redis://", "rediss://")):
            raise ConfigurationError(
                "TENFOLD_JOBS__BROKER_URL is not a redis:// URL: set TENFOLD_JOBS__BROKER "
                "(rabbitmq for amqp://)",
                setting="TENFOLD_JOBS__BROKER",
            )
        return kind, url
    if redis.url is None:
        raise ConfigurationError(
            "TENFOLD_JOBS__BROKER is redis but no Redis URL is set: set TENFOLD_REDIS__URL "
            "or TENFOLD_JOBS__BROKER_URL (Redis Cluster cannot be a Celery broker)",
            setting="TENFOLD_JOBS__BROKER",
        )
    return kind, redis.url.get_secret_value()


def _result_backend(settings: JobsSettings, redis: RedisSettings) -> str | None:
    if settings.result_backend == "off":
        return None
    if redis.url is None:
        raise ConfigurationError(
            "TENFOLD_JOBS__RESULT_BACKEND is redis but TENFOLD_REDIS__URL is unset",
            setting="TENFOLD_JOBS__RESULT_BACKEND",
        )
    return redis.url.get_secret_value()


def celery_app(name: str, settings: JobsSettings, redis: RedisSettings) -> Celery:
    """A Celery app for these settings; nothing connects until a message is sent."""
    kind, url = broker_of(settings, redis)
    backend = _result_backend(settings, redis)
    app = Celery(name, set_as_current=False)
    conf: dict[str, Any] = {
        "broker_url": url,
        "broker_connection_retry_on_startup": True,
        "result_backend": backend,
        "task_ignore_result": backend is None,
        "task_default_queue": settings.default_queue,
        # Queues a task names are declared on first use, so routing needs no central table.
        "task_create_missing_queues": True,
        # Filled as tasks are registered: task name -> {"queue": ...}.
        "task_routes": {},
        # Celery sends a message given no priority without one, which kombu's Redis transport
        # files in its most urgent list: give it tenfold's neutral default instead.
        "task_default_priority": broker_priority(kind, DEFAULT_PRIORITY),
        # Acknowledge after the task ran, not when it was received: a worker that dies
        # mid-task leaves the message to be delivered again (at-least-once) ...
        "task_acks_late": True,
        # ... including when the pool process was killed (OOM, time limit, kill -9),
        # which Celery otherwise acknowledges as failed.
        "task_reject_on_worker_lost": True,
        # One message reserved per process: a long task does not hold others hostage.
        "worker_prefetch_multiplier": settings.prefetch_multiplier,
        "worker_max_memory_per_child": settings.max_memory_per_child,
        "task_soft_time_limit": settings.soft_time_limit,
        "task_time_limit": settings.time_limit,
        # Remote control and events publish to broadcast exchanges on every worker and
        # task; off unless asked for (they are what `celery inspect` and flower read).
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        # JSON only: pickle would run whatever a message carries.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # tenfold configures logging; Celery must not replace the root logger's handlers.
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }
    if kind == "redis":
        # A message not acknowledged within this many seconds is delivered again; it must
        # exceed every task's run time and every countdown (enforced at enqueue).
        conf["broker_transport_options"] = {
            "visibility_timeout": settings.visibility_timeout,
            "priority_steps": list(PRIORITY_STEPS),
            "sep": REDIS_SEP,
            "queue_order_strategy": "priority",
            # A dead worker's unacknowledged messages come back when another worker sweeps
            # them. kombu sweeps at the worker's start and then on every 10th tick of 10 s,
            # so they came back up to 100 s after the visibility timeout: sweep on each
            # tick, every tenth of the timeout (1 to 10 s).
            "unacked_restore_interval": min(10, max(1, settings.visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
        }
    if kind == "memory":
        # Not kombu's memory transport as is: its queues are shared by the whole process.
        conf["broker_transport"] = "tenfold.jobs._memory:MemoryTransport"
        # The app's own queues; every connection's options are a shallow copy of these. The
        # id keeps kombu's process-wide producer pools (keyed by the options' repr) apart.
        conf["broker_transport_options"] = {QUEUES_OPTION: {}, "tenfold_broker": uuid.uuid4().hex}
    if kind == "rabbitmq":
        # Queues Celery declares (the default one, a task's, a worker's --queues) are
        # priority queues; RabbitMQ ignores the priority of messages in any other queue.
        conf["task_queue_max_priority"] = MAX_PRIORITY
    app.conf.update(conf)
    return app
