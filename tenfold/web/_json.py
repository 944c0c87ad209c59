"""How deep and how long a JSON body is, found by scanning its bytes, not parsing them.

The application parses the body once (FastAPI, ``json.loads``); this scan runs
before that, on the same bytes, and only says whether a limit is exceeded. It
stays in C loops: the strings are cut out (a ``split`` on quotes when no quote
is escaped, else one regular-expression pass) and measured, a ``translate``
keeps only the brackets of what is left, and the depth is the running sum of
+1 per opening and -1 per closing bracket (``accumulate`` over a signed byte
array). A body with no more opening brackets than the depth limit skips that
sum, and a run of more consecutive openers than the limit ends it at once.
On a 1 MB body it costs less than parsing it.

It is a check, not a validator: malformed JSON passes through to the parser,
which reports it.
"""

from __future__ import annotations

import functools
import json
import re
from array import array
from itertools import accumulate

__all__ = ["json_excess"]

# A JSON string: quotes around any run of non-quote, non-backslash bytes and escapes.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
# Opening brackets to +1, closing ones to -1 as signed bytes.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_excess(body: bytes, max_depth: int, max_string: int) -> str | None:
    """Why ``body`` exceeds the limits (a sentence for the client), or None."""
    # Most bodies are small and shallow: too short for a long string and with fewer
    # brackets (counting any inside strings) than the limit. Two counts settle them.
    if len(body) <= max_string + 2 and body.count(b"[") + body.count(b"{") <= max_depth:
        return None
    skeleton = body
    if b'"' in body:
        skeleton, longest = _without_strings(body)
        if longest > max_string and _longest_over(body, max_string):
            return f"A string in the JSON body is longer than {max_string} characters."
    brackets = skeleton.translate(None, _NOT_BRACKETS)
    if len(brackets) - brackets.count(b"]") - brackets.count(b"}") <= max_depth:
        return None
    if _opening_run(max_depth).search(brackets) or _depth(brackets) > max_depth:
        return f"The JSON body is nested deeper than {max_depth} levels."
    return None


def _without_strings(body: bytes) -> tuple[bytes, int]:
    """``body`` with its strings cut out, and the bytes of the longest one (an upper bound
    of its characters: escapes and UTF-8 only shrink when decoded)."""
    if b'\\"' not in body:
        # No quote is escaped, so every quote opens or closes a string.
        parts = body.split(b'"')
        strings = parts[1::2]
        return b"".join(parts[::2]), max(map(len, strings)) if strings else 0
    longest = 0
    pieces: list[bytes] = []
    position = 0
    for found in _STRING.finditer(body):
        start, end = found.span()
        pieces.append(body[position:start])
        position = end
        longest = max(longest, end - start - 2)
    pieces.append(body[position:])
    return b"".join(pieces), longest


def _longest_over(body: bytes, max_string: int) -> bool:
    for found in _STRING.finditer(body):
        start, end = found.span()
        if end - start - 2 > max_string and _characters(found.group()) > max_string:
            return True
    return False


def _characters(raw: bytes) -> int:
    try:
        return len(json.loads(raw))
    except ValueError:  # not a valid string: the parser will say so
        return 0


def _depth(brackets: bytes) -> int:
    return max(accumulate(array("b", brackets.translate(_STEPS))))


@functools.cache
def _opening_run(max_depth: int) -> re.Pattern[bytes]:
    """More consecutive opening brackets than ``max_depth``: too deep, whatever follows."""
    return re.compile(rb"[\[{]{%d}" % (max_depth + 1))
