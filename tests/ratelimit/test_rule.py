"""Rate and Rule: parsing, validation and representation."""

from __future__ import annotations

import pytest

from tenfold.ratelimit import Rate, Rule


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("100/minute", 100, 60.0),
        ("1000 per day", 1000, 86_400.0),
        ("10/5s", 10, 5.0),
        ("5/h", 5, 3600.0),
        ("3/second", 3, 1.0),
    ],
)
def test_parse(text: str, limit: int, period: float) -> None:
    """Rate.parse reads N/unit and N/<k><unit>."""
    assert Rate.parse(text) == Rate(limit, period)


@pytest.mark.parametrize("text", ["100", "100/fortnight", "-1/minute", "/minute", "0/minute"])
def test_parse_refuses_nonsense(text: str) -> None:
    """Rate.parse names the expected syntax when it cannot read the text."""
    with pytest.raises(ValueError, match="rate"):
        Rate.parse(text)


def test_emission_interval() -> None:
    """The emission interval is the period divided by the limit."""
    assert Rate.parse("100/minute").emission_interval == pytest.approx(0.6)


def test_reprs_read_like_the_source() -> None:
    """Rate and Rule reprs show the rate as it would be written."""
    assert repr(Rate.parse("100/minute")) == "Rate('100/minute')"
    assert repr(Rate(10, 5.0)) == "Rate('10/5s')"
    assert repr(Rule(Rate.parse("100/minute"), burst=20)) == "Rule('100/minute', burst=20)"
    assert repr(Rule(Rate.parse("1000/day"))) == "Rule('1000/day')"


def test_rule_accepts_a_rate_string() -> None:
    """Rule('100/minute') parses the rate."""
    assert Rule("100/minute") == Rule(Rate(100, 60.0))  # type: ignore[arg-type]


def test_burst_defaults_to_the_limit() -> None:
    """Without a burst a rested key admits the whole limit at once."""
    assert Rule(Rate(7, 60.0)).capacity == 7
    assert Rule(Rate(7, 60.0), burst=2).capacity == 2


def test_invalid_values_fail_early() -> None:
    """A zero limit, a non-positive period or a zero burst is a ValueError."""
    with pytest.raises(ValueError, match="limit"):
        Rate(0, 60.0)
    with pytest.raises(ValueError, match="period"):
        Rate(1, 0.0)
    with pytest.raises(ValueError, match="burst"):
        Rule(Rate(1, 60.0), burst=0)


def test_ident_differs_by_behaviour() -> None:
    """Rules that decide differently are stored apart."""
    idents = {
        Rule(Rate(5, 60.0)).ident,
        Rule(Rate(5, 60.0), burst=2).ident,
        Rule(Rate(5, 1.0)).ident,
    }
    assert len(idents) == 3


def test_sliding_window_rule() -> None:
    """A sliding-window rule has its own identity and takes no burst other than the limit."""
    rule = Rule("100/minute", algorithm="sliding_window")
    assert rule.sliding
    assert rule.capacity == 100
    assert rule.ident == "100/60sw" != Rule("100/minute").ident
    assert repr(rule) == "Rule('100/minute', algorithm='sliding_window')"
    with pytest.raises(ValueError, match="no burst"):
        Rule("100/minute", burst=10, algorithm="sliding_window")
    with pytest.raises(ValueError, match="unknown algorithm"):
        Rule("100/minute", algorithm="fixed")
