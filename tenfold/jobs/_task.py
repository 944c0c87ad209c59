"""Declaring tasks before any platform exists: ``task``, ``Tasks`` and ``Task``.

A task is declared at import time, like a FastAPI route on an ``APIRouter``;
the ``jobs`` extension registers the declarations it is given on its Celery
app when the platform is built. Until then a declaration is inert: calling it
runs the function in place, and ``enqueue`` says which extension is missing.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from tenfold._backoff import Backoff
from tenfold._errors import ConfigurationError

if TYPE_CHECKING:
    from tenfold.db import TenfoldSession
    from tenfold.jobs._jobs import Jobs
    from tenfold.jobs._schedule import Periodic

__all__ = ["RetryOn", "Task", "TaskOptions", "Tasks", "task"]

P = ParamSpec("P")
R = TypeVar("R")

#: What a task retries: exception classes, or a predicate over the exception.
RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]

#: Waits between attempts when a task declares none: full jitter from 1 s, at most 10 min.
DEFAULT_BACKOFF = Backoff(base=1.0, multiplier=2.0, max=600.0, jitter="full")


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How a task is routed, retried and limited (the decorator's arguments)."""

    name: str
    queue: str | None = None
    #: 0..9, 9 the most urgent on every broker; None: 5.
    priority: int | None = None
    backoff: Backoff = DEFAULT_BACKOFF
    max_retries: int = 3
    #: None: ``tenfold.resilience.transient`` errors only.
    retry_on: RetryOn | None = None
    soft_time_limit: int | None = None
    time_limit: int | None = None
    rate_limit: str | None = None
    #: Record the task's key in the transaction of its writes (``task_session()``), so a
    #: redelivered message whose effect committed is acknowledged without running again.
    exactly_once: bool = False
    #: The key of a run, from the task's arguments; default: the message id. Implies
    #: ``exactly_once``.
    key: Callable[..., str] | None = None

    def __post_init__(self) -> None:
        if self.key is not None and not self.exactly_once:
            object.__setattr__(self, "exactly_once", True)
        if self.max_retries < 0:
            raise ValueError(f"task {self.name}: max_retries must be >= 0")
        if self.priority is not None and not 0 <= self.priority <= 9:
            raise ValueError(f"task {self.name}: priority must be within 0..9")

    def retries(self, exc: BaseException) -> bool:
        """Whether ``exc`` is one this task tries again after."""
        if self.retry_on is None:
            from tenfold._errors import DatabaseUnavailable
            from tenfold.resilience import transient

            # A lost connection mid-commit has an unknown outcome: harmless to retry only
            # when the task's key tells a committed run from one that did not commit.
            return transient(exc) or (self.exactly_once and isinstance(exc, DatabaseUnavailable))
        if isinstance(self.retry_on, tuple):
            return isinstance(exc, self.retry_on)
        return self.retry_on(exc)


class Task(Generic[P, R]):
    """A declared task. Call it to run the function here; ``await t.enqueue(...)`` to send it.

    ``countdown``, ``eta``, ``priority``, ``queue`` and ``session`` are
    ``enqueue``'s own keywords, so a task's parameters cannot use those names.
    """

    def __init__(self, fn: Callable[P, R] | Callable[P, Awaitable[R]], options: TaskOptions):
        self.fn = fn
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        if options.exactly_once and not self.is_async:
            raise ConfigurationError(
                f"task {options.name!r}: an exactly-once task is an `async def`; its writes "
                "go through task_session() in the transaction that records its key"
            )
        self._jobs: Jobs | None = None
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return self.options.name

    def __repr__(self) -> str:
        return f"<Task {self.name!r} queue={self.options.queue!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        return self.fn(*args, **kwargs)

    async def enqueue(
        self,
        *args: Any,
        countdown: float | None = None,
        eta: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        session: TenfoldSession | None = None,
        **kwargs: Any,
    ) -> str:
        """Send the task to its queue; the message id. Publishing runs in a thread.

        With ``session``, the message is written to the outbox in that session's
        transaction and sent only after it commits; a rollback drops it.
        A ``countdown`` or ``eta`` further away than TENFOLD_JOBS__MAX_COUNTDOWN
        is a ``ConfigurationError`` (see docs/jobs.md, "Visibility timeout").
        """
        return await self.jobs.enqueue(
            self,
            args,
            kwargs,
            countdown=countdown,
            eta=eta,
            priority=priority,
            queue=queue,
            session=session,
        )

    @property
    def jobs(self) -> Jobs:
        """The ``Jobs`` of the platform that registered this task last."""
        if self._jobs is None:
            raise ConfigurationError(
                f"task {self.name!r} is not part of any platform: pass it to "
                "JobsExtension(tasks=[...]) and build the platform first"
            )
        return self._jobs

    def bind(self, jobs: Jobs) -> None:
        """Make ``jobs`` the one ``enqueue`` sends through (the jobs extension calls this)."""
        self._jobs = jobs


class Tasks:
    """A group of task declarations, handed to ``JobsExtension(tasks=[group])`` as a whole."""

    def __init__(self, *, queue: str | None = None) -> None:
        #: The queue of this group's tasks that name none.
        self.queue = queue
        self._tasks: list[Task[Any, Any]] = []
        #: Periodic entries (``periodic``), sent by ``tenfold beat``.
        self.schedule: list[Periodic] = []

    def __iter__(self) -> Iterator[Task[Any, Any]]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, declared: Task[Any, Any]) -> Task[Any, Any]:
        self._tasks.append(declared)
        return declared

    def task(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """``@tasks.task(queue=..., ...)``: declare a task in this group (see ``task``)."""
        options.setdefault("queue", self.queue)

        def declare(f: Callable[..., Any]) -> Task[Any, Any]:
            return self.add(task(**options)(f))

        return declare(fn) if fn is not None else declare

    def periodic(
        self,
        every: float | None = None,
        task: Task[Any, Any] | None = None,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        cron: str | None = None,
        name: str | None = None,
        queue: str | None = None,
    ) -> None:
        """Have ``tenfold beat`` send ``task(*args, **kwargs)`` every ``every`` seconds, or
        at each minute the crontab expression ``cron`` matches in UTC.

        ``ValueError`` for a bad expression, or unless exactly one of the two is given.
        """
        from tenfold.jobs._cron import Cron
        from tenfold.jobs._schedule import Periodic

        if task is None:
            raise ValueError("periodic: which task? (task=...)")
        entry = Periodic(
            name=name or task.name,
            task=task.name,
            every=every,
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            queue=queue,
            cron=None if cron is None else Cron.parse(cron),
        )
        self.schedule.append(entry)


@dataclass
class _Declarator:
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self, fn: Callable[P, R]) -> Task[P, R]:
        options = dict(self.options)
        name = options.pop("name", None) or f"{fn.__module__}.{fn.__qualname__}"
        return Task(fn, TaskOptions(name=name, **options))


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    queue: str | None = None,
    priority: int | None = None,
    backoff: Backoff = DEFAULT_BACKOFF,
    max_retries: int = 3,
    retry_on: RetryOn | None = None,
    soft_time_limit: int | None = None,
    time_limit: int | None = None,
    rate_limit: str | None = None,
    exactly_once: bool = False,
    key: Callable[..., str] | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a task: ``@task`` or ``@task(queue="media", max_retries=5, ...)``.

    ``name`` defaults to ``module.qualname``. A failure that ``retry_on``
    selects (exception classes or a predicate; default: the transient
    errors of ``tenfold.resilience.transient``) is tried again after
    ``backoff.delay(attempt)``, at most ``max_retries`` times; anything else
    fails the task at once. ``soft_time_limit``/``time_limit`` (seconds) and
    ``rate_limit`` (Celery's ``"10/m"``) override the section's defaults.

    ``exactly_once=True`` (an ``async def`` task) runs the task in one
    transaction that also records its key (``key(*args, **kwargs)``, default:
    the message id); its writes go through ``task_session()``. A delivery whose
    key committed before is acknowledged without running.
    """
    declarator = _Declarator(dict(options))
    return declarator(fn) if fn is not None else declarator


def flatten(tasks: Iterable[Task[Any, Any] | Tasks]) -> list[Task[Any, Any]]:
    """Every task of ``tasks`` (tasks and groups), refusing two of one name."""
    found: dict[str, Task[Any, Any]] = {}
    for item in tasks:
        for declared in item if isinstance(item, Tasks) else (item,):
            if not isinstance(declared, Task):
                raise ConfigurationError(f"not a declared task: {declared!r} (use @task)")
            if declared.name in found and found[declared.name] is not declared:
                raise ConfigurationError(f"two tasks are named {declared.name!r}")
            found[declared.name] = declared
    return list(found.values())
