"""Periodic tasks: what runs every so many seconds, or on a crontab, declared in code or
in settings.

An entry is due at every whole multiple of ``every`` seconds since the Unix
epoch (``every=60`` runs at each minute), or at each minute its ``cron``
expression matches in UTC (``_cron``). Any beat process computes the same due
times from the clock alone, so a beat that takes over from another needs no
state from it: it sends the next due time after its election. A due time that
passed while no beat led is skipped, not made up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenfold._errors import ConfigurationError
from tenfold.jobs._cron import Cron

if TYPE_CHECKING:
    from tenfold.jobs._settings import ScheduledTask
    from tenfold.jobs._task import Task, Tasks

__all__ = ["Periodic", "next_due", "schedule_of"]


@dataclass(frozen=True, slots=True)
class Periodic:
    """One periodic entry: send task ``task`` with these arguments every ``every`` seconds,
    or when ``cron`` matches (one of the two)."""

    name: str
    task: str
    every: float | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: None: the task's own queue.
    queue: str | None = None
    cron: Cron | None = None

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"periodic entry {self.name!r}: give one of every and cron")
        if self.every is not None and not self.every > 0:
            raise ValueError(f"periodic entry {self.name!r}: every must be > 0 seconds")

    def next_due(self, now: float) -> float:
        """The entry's first due time strictly after ``now`` (seconds since the epoch)."""
        if self.cron is not None:
            return self.cron.next_after(now)
        assert self.every is not None  # __post_init__ checked it
        return next_due(self.every, now)


def next_due(every: float, now: float) -> float:
    """The first multiple of ``every`` (seconds since the epoch) strictly after ``now``."""
    return (math.floor(now / every) + 1) * every


def schedule_of(
    declared: Iterable[Task[Any, Any] | Tasks],
    configured: Mapping[str, ScheduledTask],
    registered: Iterable[str],
) -> list[Periodic]:
    """Every periodic entry of the task groups and of TENFOLD_JOBS__SCHEDULE, checked.

    Two entries of one name, an entry of a task the extension does not
    register, or a configured entry with a bad ``cron`` or without exactly
    one of ``every`` and ``cron``, fail the build (``ConfigurationError``).
    """
    from tenfold.jobs._task import Tasks

    entries: list[Periodic] = []
    for group in declared:
        if isinstance(group, Tasks):
            entries.extend(group.schedule)
    for name, entry in configured.items():
        try:
            periodic = Periodic(
                name=name,
                task=entry.task,
                every=entry.every,
                args=tuple(entry.args),
                kwargs=dict(entry.kwargs),
                queue=entry.queue,
                cron=None if entry.cron is None else Cron.parse(entry.cron),
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"periodic entry {name!r}: {exc}", setting="TENFOLD_JOBS__SCHEDULE"
            ) from None
        entries.append(periodic)
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
