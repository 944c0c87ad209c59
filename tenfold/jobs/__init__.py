"""Background jobs on Celery: declared tasks, a broker from the settings, ``tenfold worker``.

    task, Tasks          declare tasks at import time (queue, priority, retries,
                         time limits, rate limit); ``Task.enqueue`` sends one
    JobsExtension        the opt-in ``jobs`` extension: ``JobsExtension(tasks=[...])``
    Jobs                 the platform's Celery app and tasks (``platform.jobs``)
    JobsSettings         ``TENFOLD_JOBS__*``
    current_platform()   the worker's started platform, inside an ``async def`` task
    task_session()       the transaction of a running exactly-once task
    DeadLetters          the dead-letter queue (``platform.jobs.dead_letters``)
    metadata             the jobs tables, for Alembic; ``create_tables(db)``

See docs/jobs.md.
"""

from tenfold.jobs._dead import DeadLetter, DeadLetters
from tenfold.jobs._extension import JobsExtension
from tenfold.jobs._jobs import Jobs
from tenfold.jobs._once import task_session
from tenfold.jobs._runtime import current_platform
from tenfold.jobs._settings import JobsSettings
from tenfold.jobs._tables import create_tables, metadata
from tenfold.jobs._task import Task, TaskOptions, Tasks, task

__all__ = [
    "DeadLetter",
    "DeadLetters",
    "Jobs",
    "JobsExtension",
    "JobsSettings",
    "Task",
    "TaskOptions",
    "Tasks",
    "create_tables",
    "current_platform",
    "metadata",
    "task",
    "task_session",
]
