"""Crontab expressions: what parses, and the due times they give (UTC, from the clock alone)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from tenfold import ConfigurationError, Platform, RedisSettings, Settings
from tenfold.jobs import JobsExtension, Tasks
from tenfold.jobs._cron import Cron
from tenfold.jobs._schedule import Periodic


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("expression", "now", "due"),
    [
        ("*/5 * * * *", "2026-12-06 10:03:17", "2026-12-06 10:05"),
        ("*/5 * * * *", "2026-12-06 10:05:00", "2026-12-06 10:10"),  # strictly after
        ("*/5 * * * *", "2026-12-06 10:04:59.999", "2026-12-06 10:05"),
        ("30 2 * * *", "2026-12-06 02:30:00", "2026-12-07 02:30"),
        ("59 23 31 12 *", "2026-12-31 23:59:00", "2027-12-31 23:59"),
        ("0 0 1 1 *", "2026-12-31 23:59:30", "2027-01-01 00:00"),
        ("0 9 * * mon-fri", "2026-12-05 10:00:00", "2026-12-07 09:00"),  # a Saturday
        ("0 0 * * 7", "2026-12-05 10:00:00", "2026-12-06 00:00"),  # 7 is Sunday, as 0
        ("0 0 13 * fri", "2026-12-05 10:00:00", "2026-12-11 00:00"),  # either day field
        ("0 0 */10 * *", "2026-12-05 10:00:00", "2026-12-11 00:00"),
        ("0 0 31 * *", "2027-02-01 00:00:00", "2027-03-31 00:00"),
        ("0 0 29 feb *", "2097-03-01 00:00:00", "2104-02-29 00:00"),  # 2100 is no leap year
        ("15/20 8-10 * JAN,Jul *", "2026-12-06 10:00:00", "2027-01-01 08:15"),
        ("@hourly", "2026-12-06 10:00:00", "2026-12-06 11:00"),
        ("@weekly", "2026-12-06 10:00:00", "2026-12-13 00:00"),
        ("@monthly", "2026-12-06 10:00:00", "2027-01-01 00:00"),
    ],
)
def test_the_next_due_time(expression: str, now: str, due: str) -> None:
    """The first matching minute strictly after `now`, in UTC."""
    assert _iso(Cron.parse(expression).next_after(_at(now))) == due


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("* * * *", "wants 5 fields"),
        ("* * * * * *", "wants 5 fields"),
        ("60 * * * *", "minute '60': 60 is outside 0-59"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day of month '0'"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day of week"),
        ("5-2 * * * *", "runs backwards"),
        ("*/0 * * * *", "a step must be at least 1"),
        ("*/ * * * *", "is not a number"),
        ("1,,2 * * * *", "is not a number"),
        ("mon * * * *", "'mon' is not a number"),
        ("* * * foo *", "not a number or a name"),
        ("0 0 30 2 *", "no day ever matches"),
        ("@often", "wants 5 fields"),
    ],
)
def test_a_bad_expression_says_what_is_wrong(expression: str, says: str) -> None:
    """Each malformed expression is a ValueError naming the field and the problem."""
    with pytest.raises(ValueError, match="cron ") as raised:
        Cron.parse(expression)
    assert says in str(raised.value)


# -- the reference: a scan of the minutes, with cron's day rule written out --------------


def _reference(cron: Cron, now: float) -> float:
    """Scan forward minute by minute (a whole day at a time on days that cannot match)."""
    t = (math.floor(now / 60) + 1) * 60
    while True:
        moment = datetime.fromtimestamp(t, UTC)
        by_day = moment.day in cron.days
        by_weekday = (moment.weekday() + 1) % 7 in cron.weekdays
        either = not (cron.any_day or cron.any_weekday)
        day_ok = moment.month in cron.months and (
            (by_day or by_weekday) if either else (by_day and by_weekday)
        )
        if not day_ok:
            t += 86_400 - (t % 86_400)
            continue
        if moment.hour in cron.hours and moment.minute in cron.minutes:
            return t
        t += 60


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    listed = st.sets(st.integers(low, high), min_size=1, max_size=4).map(
        lambda values: ",".join(map(str, sorted(values)))
    )
    ranged = st.tuples(st.integers(low, high), st.integers(low, high), st.integers(1, 7)).map(
        lambda t: f"{min(t[0], t[1])}-{max(t[0], t[1])}/{t[2]}"
    )
    stepped = st.integers(1, 13).map(lambda step: f"*/{step}")
    return st.one_of(st.just("*"), listed, ranged, stepped)


expressions = st.tuples(
    _field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12), _field(0, 7)
).map(" ".join)
moments = st.floats(0, 7_000_000_000, allow_nan=False)  # 1970 to about 2191


@settings(max_examples=300, deadline=None)
@given(expression=expressions, now=moments)
def test_next_after_matches_a_minute_by_minute_scan(expression: str, now: float) -> None:
    """For any expression that can match, next_after is the reference scan's first minute."""
    try:
        cron = Cron.parse(expression)
    except ValueError:
        reject()  # a day of month no month has (the 30th of February)
    assert cron.next_after(now) == _reference(cron, now)


# -- entries --------------------------------------------------------------------------

group = Tasks()


@group.task
def ping() -> None: ...


def test_a_periodic_entry_takes_every_or_cron() -> None:
    """`periodic(cron=...)` declares a crontab entry; both, neither or a bad expression is a
    ValueError when declared."""
    tasks = Tasks()
    tasks.periodic(cron="*/5 * * * *", task=ping)
    [entry] = tasks.schedule
    assert entry.next_due(_at("2026-12-06 10:03:00")) == _at("2026-12-06 10:05:00")
    assert entry.name == ping.name
    for wrong in ({"every": 60, "cron": "* * * * *"}, {}, {"cron": "61 * * * *"}):
        with pytest.raises(ValueError):
            tasks.periodic(task=ping, **wrong)  # type: ignore[arg-type]
    assert Periodic("e", "t", every=60).next_due(119.0) == 120.0


@pytest.mark.parametrize(
    "entry",
    [
        {"cron": "61 * * * *"},
        {"cron": "* * *"},
        {"every": 60, "cron": "* * * * *"},
        {},
    ],
)
def test_a_bad_configured_entry_fails_the_build_naming_the_schedule(
    monkeypatch: pytest.MonkeyPatch, entry: dict[str, object]
) -> None:
    """A TENFOLD_JOBS__SCHEDULE entry with a bad cron, or not exactly one of every and cron,
    fails the build naming TENFOLD_JOBS__SCHEDULE and the entry."""
    schedule = {"nightly": {"task": ping.name, **entry}}
    monkeypatch.setenv("TENFOLD_JOBS__SCHEDULE", json.dumps(schedule))
    loaded = Settings.load(redis=RedisSettings(url="redis://127.0.0.1:1/0"))
    with pytest.raises(ConfigurationError) as raised:
        Platform.build(loaded, extensions=[JobsExtension(tasks=[group])], configure_logs=False)
    assert raised.value.setting == "TENFOLD_JOBS__SCHEDULE"
    assert "'nightly'" in str(raised.value)


def test_a_configured_cron_entry_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TENFOLD_JOBS__SCHEDULE entry with "cron" becomes a crontab entry of the schedule."""
    schedule = {"nightly": {"task": ping.name, "cron": "0 3 * * *", "args": []}}
    monkeypatch.setenv("TENFOLD_JOBS__SCHEDULE", json.dumps(schedule))
    loaded = Settings.load(redis=RedisSettings(url="redis://127.0.0.1:1/0"))
    platform = Platform.build(
        loaded, extensions=[JobsExtension(tasks=[group])], configure_logs=False
    )
    [entry] = platform.jobs.schedule
    assert (entry.name, entry.every, str(entry.cron)) == ("nightly", None, "0 3 * * *")
    assert entry.next_due(_at("2026-12-06 10:00:00")) == _at("2026-12-07 03:00:00")
