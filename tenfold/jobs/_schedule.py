"""Periodic tasks: what runs every so many seconds, declared in code or in settings.

An entry is due at every whole multiple of ``every`` seconds since the Unix
epoch (``every=60`` runs at each minute, like cron). Any beat process
computes the same due times from the clock alone, so a beat that takes over
from another needs no state from it: it sends the next due time after its
election. A due time that passed while no beat led is skipped, not made up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenfold._errors import ConfigurationError

if TYPE_CHECKING:
    from tenfold.jobs._settings import ScheduledTask
    from tenfold.jobs._task import Task, Tasks

__all__ = ["Periodic", "next_due", "schedule_of"]


@dataclass(frozen=True, slots=True)
class Periodic:
    """One periodic entry: send task ``task`` with these arguments every ``every`` seconds."""

    name: str
    task: str
    every: float
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: None: the task's own queue.
    queue: str | None = None

    def __post_init__(self) -> None:
        if not self.every > 0:
            raise ValueError(f"periodic entry {self.name!r}: every must be > 0 seconds")


def next_due(every: float, now: float) -> float:
    """The first multiple of ``every`` (seconds since the epoch) strictly after ``now``."""
    return (math.floor(now / every) + 1) * every


def schedule_of(
    declared: Iterable[Task[Any, Any] | Tasks],
    configured: Mapping[str, ScheduledTask],
    registered: Iterable[str],
) -> list[Periodic]:
    """Every periodic entry of the task groups and of TENFOLD_JOBS__SCHEDULE, checked.

    Two entries of one name, or an entry of a task the extension does not
    register, fail the build (``ConfigurationError``).
    """
    from tenfold.jobs._task import Tasks

    entries: list[Periodic] = []
    for group in declared:
        if isinstance(group, Tasks):
            entries.extend(group.schedule)
    for name, entry in configured.items():
        entries.append(
            Periodic(
                name=name,
                task=entry.task,
                every=entry.every,
                args=tuple(entry.args),
                kwargs=dict(entry.kwargs),
                queue=entry.queue,
            )
        )
    _check(entries, set(registered))
    return entries


def _check(entries: Sequence[Periodic], registered: set[str]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ConfigurationError(
                f"two periodic entries are named {entry.name!r}", setting="TENFOLD_JOBS__SCHEDULE"
            )
        seen.add(entry.name)
        if entry.task not in registered:
            raise ConfigurationError(
                f"periodic entry {entry.name!r} names task {entry.task!r}, which "
                "JobsExtension(tasks=[...]) does not register",
                setting="TENFOLD_JOBS__SCHEDULE",
            )
