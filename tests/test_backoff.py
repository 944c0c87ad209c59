"""Backoff: validation, growth, the cap, and each kind of jitter with a seeded rng."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from tenfold import Backoff


def test_defaults_and_repr() -> None:
    """The defaults are 0.1 s doubling to 10 s with full jitter, and the repr says so."""
    assert repr(Backoff()) == "Backoff(base=0.1, multiplier=2.0, max=10.0, jitter='full')"


def test_windows_grow_by_the_multiplier_up_to_the_cap() -> None:
    """Window n is base * multiplier ** (n - 1), never above max."""
    backoff = Backoff(base=0.5, multiplier=3.0, max=10.0)
    assert [backoff.window(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]


def test_the_cap_applies_to_the_first_window_too() -> None:
    """A max below base caps the very first delay."""
    assert Backoff(base=5.0, max=1.0, jitter="none").delay(1) == 1.0


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    """Attempt numbers whose power overflows a float give the cap, not an error."""
    assert Backoff(max=30.0).window(100_000) == 30.0
    assert Backoff(max=math.inf).window(100_000) == math.inf


def test_no_jitter_is_exactly_the_window() -> None:
    """With jitter 'none' the delay is the window and needs no rng."""
    backoff = Backoff(base=0.2, jitter="none")
    assert [backoff.delay(n) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]


def test_full_jitter_spreads_over_the_whole_window() -> None:
    """Full jitter draws from [0, window], reaching both ends."""
    backoff, rng = Backoff(base=1.0, max=8.0), random.Random(7)
    for attempt in range(1, 8):
        window = backoff.window(attempt)
        draws = [backoff.delay(attempt, rng) for _ in range(300)]
        assert all(0.0 <= d <= window for d in draws)
        assert min(draws) < 0.1 * window
        assert max(draws) > 0.9 * window


def test_equal_jitter_stays_in_the_upper_half() -> None:
    """Equal jitter draws from [window / 2, window]."""
    backoff, rng = Backoff(base=1.0, max=8.0, jitter="equal"), random.Random(7)
    for attempt in range(1, 8):
        window = backoff.window(attempt)
        draws = [backoff.delay(attempt, rng) for _ in range(300)]
        assert all(window / 2 <= d <= window for d in draws)
        assert min(draws) < 0.6 * window


def test_a_seeded_rng_gives_the_same_delays() -> None:
    """The same seed draws the same delays."""
    backoff = Backoff()
    first, second = random.Random(3), random.Random(3)
    assert [backoff.delay(n, first) for n in range(1, 8)] == [
        backoff.delay(n, second) for n in range(1, 8)
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base": 0.0}, "base"),
        ({"base": -1.0}, "base"),
        ({"base": math.nan}, "base"),
        ({"base": math.inf}, "base"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"multiplier": math.nan}, "multiplier"),
        ({"max": 0.0}, "max"),
        ({"max": math.nan}, "max"),
        ({"jitter": "partial"}, "jitter"),
    ],
)
def test_invalid_arguments_are_refused(options: dict[str, object], message: str) -> None:
    """A Backoff that could not produce sensible delays fails when it is built, naming the field."""
    with pytest.raises(ValueError, match=message):
        Backoff(**options)  # type: ignore[arg-type]


def test_attempts_count_from_one() -> None:
    """Attempt 0 is refused: the first wait follows the first failed attempt."""
    with pytest.raises(ValueError, match="from 1"):
        Backoff().delay(0)


def test_frozen_and_slotted() -> None:
    """A Backoff cannot be changed after it is built, and has no instance dict."""
    backoff = Backoff()
    with pytest.raises(dataclasses.FrozenInstanceError):
        backoff.base = 1.0  # type: ignore[misc]
    assert not hasattr(backoff, "__dict__")
    assert dataclasses.replace(backoff, base=1.0) == Backoff(base=1.0)
