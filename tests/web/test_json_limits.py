"""The JSON limits scan agrees with a parse of the same document, on any document."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.web._json import json_excess

# Strings with the characters that could fool a byte scan: quotes, backslashes, brackets,
# non-ASCII (several UTF-8 bytes, or one \\uXXXX escape of six) and surrogate pairs.
_TEXT = st.text(st.sampled_from('ab"\\[]{}é€😀\n'), max_size=12)
_LEAVES = st.none() | st.booleans() | st.integers() | _TEXT
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=40,
)


def depth(value: Any) -> int:
    """Nesting depth as the limit counts it: a scalar 0, an empty list or object 1."""
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def longest(value: Any) -> int:
    """Characters of the longest string, keys included."""
    if isinstance(value, list):
        return max(map(longest, value), default=0)
    if isinstance(value, dict):
        return max([*map(len, value), *map(longest, value.values())], default=0)
    return len(value) if isinstance(value, str) else 0


@settings(max_examples=400, deadline=None)
@given(
    value=_VALUES,
    ascii_only=st.booleans(),
    max_depth=st.integers(1, 8),
    max_string=st.integers(1, 14),
)
def test_scan_matches_the_parsed_document(
    value: Any, ascii_only: bool, max_depth: int, max_string: int
) -> None:
    """A document is refused exactly when its parse is deeper or has a longer string."""
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    refused = json_excess(body, max_depth, max_string) is not None
    assert refused == (depth(value) > max_depth or longest(value) > max_string)


def test_deep_bomb_is_refused_without_a_parse() -> None:
    """A megabyte of opening brackets is refused (the parser would hit its recursion limit)."""
    assert json_excess(b"[" * 1_000_000, 32, 65536) is not None


def test_malformed_documents_are_left_to_the_parser() -> None:
    """Unbalanced or truncated JSON within the limits is not refused by the scan."""
    for body in (b"[1, 2]]]", b'{"a": "unterminated', b"]]]{{", b'"\\'):
        assert json_excess(body, 2, 100) is None
