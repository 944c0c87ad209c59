"""Cache keys: typed parts, no collisions, no injection, a shared Cluster slot per entry."""

from __future__ import annotations

import enum
import math
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from tenfold.cache._keys import key, tag, tag_key
from tenfold.redis import hash_tag

HOSTILE_TEXT = st.one_of(
    st.text(),
    st.sampled_from(["*", ":", "\n", "{", "}", "{x}", "a:b", "*:*", " ", "", "tf:ns:{0}:x"]),
    st.text(alphabet="*:{}\n\r\t ~#!%@$(),|", max_size=20),
    st.tuples(st.text(min_size=1, max_size=8), st.integers(9_000, 10_500), st.text(max_size=3)).map(
        lambda t: (t[0] * t[1])[: t[1]] + t[2]  # ~10 kB strings that differ only at the end
    ),
    st.from_regex(r"~[0-9a-f]{32}", fullmatch=True),  # looks like the hashed form
    st.from_regex(r"[#!%@$][0-9a-z.+-]{0,10}", fullmatch=True),  # looks like a typed segment
    st.from_regex(r"\([#a-z0-9,!]{0,20}\)", fullmatch=True),  # looks like a tuple segment
    st.sampled_from(["é", "ß", "日本", "\u0000", "\ud800", "\uff21\uff22\uff23", "a\u0301"]),
)
SCALARS = st.one_of(
    HOSTILE_TEXT,
    st.integers(),
    st.integers(min_value=10**63, max_value=10**80),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.binary(max_size=80),
    st.uuids(),
)
PARTS = st.recursive(SCALARS, lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=4))


def _kind_tree(part: object) -> object:
    """What a key must distinguish: the kind of each part and its value (lists count as tuples)."""
    if isinstance(part, list | tuple):
        return ("seq", tuple(_kind_tree(p) for p in part))
    if isinstance(part, float):
        return ("float", part + 0.0)  # -0.0 == 0.0: they may share a key
    return (type(part).__name__, part)


@settings(max_examples=400, deadline=None)
@given(a=st.lists(PARTS, max_size=3), b=st.lists(PARTS, max_size=3))
def test_distinct_parts_give_distinct_keys(a: list[object], b: list[object]) -> None:
    """Two different part tuples never produce the same key, whatever the parts contain."""
    if [_kind_tree(p) for p in a] != [_kind_tree(p) for p in b]:
        assert key("ns", *a) != key("ns", *b)
    else:
        assert key("ns", *a) == key("ns", *b)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(PARTS, max_size=4))
def test_keys_are_safe_and_bounded(parts: list[object]) -> None:
    """A key is printable ASCII without spaces, has exactly one hash tag, and stays short."""
    k = key("ns", *parts)
    assert k.isascii()
    assert k.isprintable()
    assert not any(c in k for c in " *\n\r\t|")
    assert k.count("{") == 1
    assert k.count("}") == 1
    assert len(k) <= 12 + 10 + 70 * len(parts)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(PARTS, max_size=3), suffix=st.sampled_from(["|kv", "|lock", "|fence"]))
def test_entry_companions_share_the_slot(parts: list[object], suffix: str) -> None:
    """An entry's companion names hash to the same Redis Cluster slot as the entry."""
    k = key("ns", *parts)
    assert key_slot(k.encode()) == key_slot((k + suffix).encode())


@settings(max_examples=200, deadline=None)
@given(a=HOSTILE_TEXT, b=HOSTILE_TEXT)
def test_tag_keys_never_collide(a: str, b: str) -> None:
    """Distinct tag strings map to distinct, single-slot version counters."""
    if a != b:
        assert tag_key(a) != tag_key(b)
    assert tag_key(a).count("{") == 1
    assert tag_key(a).isascii()


def test_safe_parts_stay_readable() -> None:
    """Short safe tokens, ints and typed scalars are legible in the key."""
    k = key("user", 42, "profile", True, None, 1.5)
    assert k.startswith("tf:user:{")
    assert k.endswith(":#42:profile:!t:!n:%1.5")


def test_unsafe_strings_are_hashed_not_embedded() -> None:
    """Separators, globs, newlines and long strings are replaced by their hash."""
    for hostile in ["a:b", "*", "x\ny", "{tag}", "é", "a" * 65, "", "~deadbeef", "#42"]:
        segment = key("ns", hostile).split("}:", 1)[1]
        assert segment.startswith("~")
        assert len(segment) == 33


def test_ten_kilobyte_part_gives_short_key() -> None:
    """A 10 kB part does not make a 10 kB key."""
    assert len(key("ns", "x" * 10_240)) < 60


def test_str_and_int_and_bytes_do_not_collide() -> None:
    """The same text as str, int, bytes or bool gives different keys."""
    keys = {key("ns", "1"), key("ns", 1), key("ns", b"1"), key("ns", True), key("ns", 1.0)}
    assert len(keys) == 5


def test_sequences_nest_without_ambiguity() -> None:
    """Tuples are delimited: ((1, 2), 3) and (1, (2, 3)) and (1, 2, 3) differ."""
    keys = {key("ns", ((1, 2), 3)), key("ns", (1, (2, 3))), key("ns", (1, 2, 3)), key("ns", 1, 2)}
    assert len(keys) == 4
    assert key("ns", [1, "a"]) == key("ns", (1, "a"))


def test_enums_use_their_value() -> None:
    """An Enum member keys like its value, IntEnum and StrEnum included."""

    class Color(enum.Enum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    assert key("ns", Color.RED) == key("ns", "red")
    assert key("ns", Level.HIGH) == key("ns", 3)


def test_uuid_and_huge_int() -> None:
    """UUIDs key by hex; ints beyond 64 digits are hashed instead of printed."""
    u = uuid.UUID(int=7)
    assert key("ns", u).endswith(":@" + u.hex)
    assert ":~" in key("ns", 10**100)
    assert key("ns", 10**100) != key("ns", 10**100 + 1)


def test_rejects_non_finite_floats_and_unknown_types() -> None:
    """NaN/inf and arbitrary objects are refused with a message that says what is allowed."""
    with pytest.raises(ValueError, match="finite"):
        key("ns", math.nan)
    with pytest.raises(TypeError, match="cannot build a cache key from a object"):
        key("ns", object())


@pytest.mark.parametrize("namespace", ["", "a:b", "a b", "x" * 65, "{x}", "é"])
def test_namespace_must_be_a_safe_token(namespace: str) -> None:
    """Namespaces come from code and must be safe tokens."""
    with pytest.raises(ValueError, match="namespace"):
        key(namespace, 1)


def test_tag_builder_and_hash_tag() -> None:
    """tag() uses the key segments; hash_tag() finds what Redis Cluster hashes."""
    assert tag("user", 42) == "user:#42"
    assert tag_key("user:#42") == "tf:tag|{user:#42}"
    assert hash_tag("a{b}c{d}") == "b"
    assert hash_tag("a{}b") is None
    assert hash_tag("plain") is None


def test_strings_that_spell_another_parts_segment_do_not_collide() -> None:
    """A str equal to the hashed or typed segment of another part keys differently from it."""
    for part in ["a:b", 42, (1, "x"), None, b"\x00", 1.5]:
        segment = key("ns", part).split("}:", 1)[1]
        assert key("ns", segment) != key("ns", part)
