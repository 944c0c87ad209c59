"""Crontab expressions for periodic tasks, evaluated in UTC.

``Cron.parse("*/5 * * * *")`` reads the five classic fields (minute, hour,
day of month, month, day of week) and ``next_after(now)`` is the first
matching minute strictly after ``now``: a function of the clock alone, so
every beat process computes the same due times.

The grammar is cron's: each field is a comma-separated list of ``*``, ``n``
or ``a-b``, each optionally ``/step``; months and days of the week also take
English names (``jan``, ``mon``); day of week 0 and 7 are Sunday. As in cron,
when both day fields are restricted (neither starts with ``*``), a day that
matches either runs. ``@hourly``, ``@daily``, ``@weekly``, ``@monthly`` and
``@yearly`` stand for their usual expressions. Celery's ``crontab`` parser is
not used: it wraps reversed ranges round, accepts names in every field and
does not read day of week 7.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = ["Cron"]

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# (name, lowest, highest, names for lowest.., in order)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)
#: How far ahead a match is looked for: longer than the gap between two 29ths of February
#: (eight years around 2100), so that only an expression that never matches finds none.
_HORIZON_DAYS = 366 * 9


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed crontab expression; ``next_after`` gives its due times (UTC)."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    #: 0 (Sunday) to 6.
    weekdays: frozenset[int]
    #: Whether the day of month field, and the day of week field, start with ``*``.
    any_day: bool
    any_weekday: bool

    def __str__(self) -> str:
        return self.expression

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """The expression parsed; ``ValueError`` saying which field is wrong and why."""
        text = _MACROS.get(expression.strip().lower(), expression)
        fields = text.split()
        if len(fields) != len(_FIELDS):
            raise ValueError(
                f"cron {expression!r}: wants 5 fields (minute hour day-of-month month "
                f"day-of-week), got {len(fields)}"
            )
        values = []
        for field, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
            try:
                values.append(_values(field, low, high, names))
            except ValueError as exc:
                raise ValueError(f"cron {expression!r}: {name} {field!r}: {exc}") from None
        minutes, hours, days, months, weekdays = values
        cron = cls(
            expression=expression,
            minutes=tuple(sorted(minutes)),
            hours=tuple(sorted(hours)),
            days=frozenset(days),
            months=frozenset(months),
            weekdays=frozenset(d % 7 for d in weekdays),
            any_day=fields[2].startswith("*"),
            any_weekday=fields[4].startswith("*"),
        )
        if cron._first_day(date(2000, 1, 1)) is None:
            raise ValueError(f"cron {expression!r}: no day ever matches")
        return cron

    def runs_on(self, day: date) -> bool:
        """Whether ``day`` is one of the expression's days."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def next_after(self, now: float) -> float:
        """The first matching minute strictly after ``now`` (seconds since the epoch, UTC)."""
        start = datetime.fromtimestamp(now, UTC).replace(second=0, microsecond=0)
        start += timedelta(minutes=1)
        day = self._first_day(start.date())
        while day is not None:
            earliest = (start.hour, start.minute) if day == start.date() else (0, 0)
            for hour in self.hours:
                if hour < earliest[0]:
                    continue
                for minute in self.minutes:
                    if (hour, minute) >= earliest:
                        moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        return moment.timestamp()
            day = self._first_day(day + timedelta(days=1))
        raise AssertionError(f"cron {self.expression!r} matched no day")  # parse checked this

    def _first_day(self, since: date) -> date | None:
        day = since
        for _ in range(_HORIZON_DAYS):
            if self.runs_on(day):
                return day
            day += timedelta(days=1)
        return None


def _values(field: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    values: set[int] = set()
    for part in field.split(","):
        body, slash, step_text = part.partition("/")
        step = _number(step_text, ()) if slash else 1
        if step < 1:
            raise ValueError("a step must be at least 1")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = _number(first, names, low), _number(last, names, low)
        else:
            start = _number(body, names, low)
            # "5/15" is 5, 20, 35, 50: from 5 to the end, as in cron.
            end = high if slash else start
        if start > end:
            raise ValueError(f"the range {body!r} runs backwards")
        if start < low or end > high:
            raise ValueError(f"{start if start < low else end} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def _number(text: str, names: tuple[str, ...], offset: int = 0) -> int:
    if text.isdigit():
        return int(text)
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + offset
    raise ValueError(f"{text!r} is not a number" + (" or a name" if names else ""))
