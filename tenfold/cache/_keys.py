"""Cache keys built from typed parts, never from raw string concatenation.

``key("user", 42, "profile")`` -> ``tf:user:{3f1c09a2}:#42:profile``

Layout: ``tf:<namespace>:{<slot tag>}`` then ``:<segment>`` per part.

* The namespace must be a safe token (``[A-Za-z0-9_.-]{1,64}``): it comes from
  code, never from a request.
* Each part becomes one *segment*. Its first character says what it is, so
  segments of different kinds can never be equal:

  ================  ======================================  ==================
  part              segment                                 example
  ================  ======================================  ==================
  safe ``str``      itself (``[A-Za-z0-9_.-]{1,64}``)       ``alice``
  other ``str``     ``~`` + blake2b-128 hex                 ``~9b2e...``
  ``int``           ``#`` + decimal (hashed beyond 64 dig.) ``#42``
  ``bool``/``None`` ``!t`` ``!f`` ``!n``                    ``!t``
  ``float``         ``%`` + repr (finite only)              ``%0.5``
  ``UUID``          ``@`` + hex                             ``@1b4e...``
  ``bytes``         ``$`` + hex up to 32 bytes, else hashed ``$cafe``
  tuple / list      ``(`` + segments joined by ``,`` + ``)``  ``(#1,a)``
                    (hashed when longer than 64 characters)
  ``Enum``          the segment of its value
  ================  ======================================  ==================

  A readable ``str`` segment only holds ``[A-Za-z0-9_.-]``, so anything with
  ``:``, ``*``, ``{``, ``}``, whitespace, non-ASCII, more than 64 characters, or
  that *looks like* another kind's segment (``~abc``, ``#42``) is hashed. The
  hash input starts with a kind byte, so a ``str`` and ``bytes`` with the same
  content hash apart. Distinct parts therefore give distinct keys (up to a
  blake2b-128 collision).
* The slot tag ``{...}`` is a CRC32 of the namespace and segments. It spreads
  keys over Redis Cluster slots, and because the backend derives an entry's
  companions (key version, lock, fencing counter) by appending a ``|suffix``,
  they all hash to the entry's slot, so one Lua script can touch them all.
  Uniqueness does not rest on the CRC: the full segments follow the tag.

Tags (for tag invalidation) are free-form strings; ``tag_key`` maps one to its
version counter ``tf:tag|{<tag>}``, hashing it when it is not a safe token.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from enum import Enum
from hashlib import blake2b
from typing import TypeAlias
from uuid import UUID

__all__ = ["KeyPart", "key", "tag", "tag_key"]

KeyPart: TypeAlias = "str | int | float | bool | bytes | UUID | Enum | Sequence[KeyPart] | None"

PREFIX = "tf"
_MAX_READABLE = 64
_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,64}").fullmatch
_SAFE_TAG = re.compile(r"[A-Za-z0-9_.:#!%@$(),-]{1,128}").fullmatch
_INT_READABLE = 10**64


def _hashed(kind: bytes, data: bytes) -> str:
    return "~" + blake2b(kind + data, digest_size=16).hexdigest()


# Memo of str parts -> segments: key() sits on every cache hit, and the regex
# check or the hash dominates it. Cleared when full, and only short parts are kept,
# so it stays bounded in bytes too (parts can come from clients: a query string,
# a search term); a long part is hashed each time, which costs little beside its size.
_str_memo: dict[str, str] = {}
_MEMO_MAX = 8192
_MEMO_LONGEST = 256


def _str_segment(part: str) -> str:
    segment = _str_memo.get(part)
    if segment is None:
        # surrogatepass: lone surrogates are legal in a Python str and must hash, not crash.
        segment = part if _SAFE(part) else _hashed(b"s", part.encode("utf-8", "surrogatepass"))
        if len(part) <= _MEMO_LONGEST:
            if len(_str_memo) >= _MEMO_MAX:
                _str_memo.clear()
            _str_memo[part] = segment
    return segment


def _int_segment(part: int) -> str:
    if -_INT_READABLE < part < _INT_READABLE:
        return f"#{part}"
    # Decimal conversion of huge ints is capped (and quadratic); hex is neither.
    return _hashed(b"i", format(part, "x").encode())


def _float_segment(part: float) -> str:
    if not math.isfinite(part):
        raise ValueError(f"a cache key part must be a finite float, not {part!r}")
    return "%" + repr(part + 0.0)  # + 0.0 folds -0.0 into 0.0: they are equal


def _bytes_segment(part: bytes) -> str:
    if len(part) <= 32:
        return "$" + part.hex()
    return _hashed(b"b", part)


def _sequence_segment(part: Sequence[object]) -> str:
    joined = "(" + ",".join([_segment(p) for p in part]) + ")"
    if len(joined) <= _MAX_READABLE:
        return joined
    return _hashed(b"t", joined.encode())


def _segment(part: object) -> str:
    kind = type(part)
    if kind is str:
        return _str_segment(part)  # type: ignore[arg-type]
    if kind is int:
        return _int_segment(part)  # type: ignore[arg-type]
    if part is None:
        return "!n"
    if kind is bool:
        return "!t" if part else "!f"
    # Enum before the subclass checks: IntEnum and StrEnum are int and str too.
    if isinstance(part, Enum):
        return _segment(part.value)
    if isinstance(part, int):
        return _int_segment(int(part))
    if isinstance(part, str):
        return _str_segment(str(part))
    if isinstance(part, float):
        return _float_segment(float(part))
    if isinstance(part, UUID):
        return "@" + part.hex
    if isinstance(part, bytes | bytearray | memoryview):
        return _bytes_segment(bytes(part))
    if isinstance(part, tuple | list):
        return _sequence_segment(part)
    raise TypeError(
        f"cannot build a cache key from a {kind.__name__}; use str, int, float, bool, None, "
        "bytes, UUID, an Enum, or a tuple/list of those"
    )


_namespaces: set[str] = set()


def _check_namespace(namespace: str) -> str:
    if namespace in _namespaces:
        return namespace
    if type(namespace) is not str or not _SAFE(namespace):
        raise ValueError(
            f"cache namespace {namespace!r} must match [A-Za-z0-9_.-]{{1,64}}; "
            "put variable parts in the key parts, not the namespace"
        )
    if len(_namespaces) < 1024:
        _namespaces.add(namespace)
    return namespace


def key(namespace: str, *parts: object) -> str:
    """The cache key for ``parts`` in ``namespace``; see the module docstring for the layout."""
    _check_namespace(namespace)
    segments = ""
    for part in parts:
        # Inlined fast paths for the common kinds: this runs on every cache hit.
        kind = type(part)
        if kind is str:
            segments += ":" + (_str_memo.get(part) or _str_segment(part))  # type: ignore[arg-type]
        elif kind is int and -_INT_READABLE < part < _INT_READABLE:  # type: ignore[operator]
            segments += ":#" + str(part)
        else:
            segments += ":" + _segment(part)
    slot = zlib.crc32((namespace + segments).encode())
    return "%s:%s:{%08x}%s" % (PREFIX, namespace, slot, segments)  # noqa: UP031 (faster)


def tag(name: str, *parts: object) -> str:
    """A tag string from typed parts: ``tag("user", 42)`` -> ``"user:#42"``."""
    return ":".join([_check_namespace(name), *[_segment(p) for p in parts]])


def tag_key(tag_name: str) -> str:
    """The Redis key of ``tag_name``'s version counter; one slot per tag."""
    if type(tag_name) is not str:
        raise TypeError(f"a cache tag must be a str, not {type(tag_name).__name__}")
    if not _SAFE_TAG(tag_name):
        tag_name = _hashed(b"g", tag_name.encode("utf-8", "surrogatepass"))
    return f"{PREFIX}:tag|{{{tag_name}}}"
