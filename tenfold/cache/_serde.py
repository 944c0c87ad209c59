"""Serializers: values to bytes for L2, with a one-byte header so any reader knows the format.

Header byte = format (low 4 bits) | ``0x80`` when the body is zlib-compressed:

    0x01 JSON (orjson)   0x02 MessagePack (msgspec)   0x03 pickle
    0x04 JSON (the standard library's ``json``), for values holding an integer
         beyond 64 bits, which neither orjson nor MessagePack can write

``OrjsonSerializer`` is the default: JSON-able values, dataclasses, datetimes,
UUIDs, enums, pydantic models (stored as ``model_dump(mode="json")``).
``MsgpackSerializer`` (needs ``msgspec``) is as fast to decode and keeps
``bytes``; entries are ~30% smaller. ``PickleSerializer`` stores any Python
object and exists only by explicit opt-in: unpickling bytes from a shared
Redis runs whatever code a writer put there.

Every serializer *reads* JSON and MessagePack entries whatever it writes, so a
deployment can switch formats without flushing; pickle entries are read only
by a serializer created with ``allow_pickle=True``.

Integers of any size round-trip: a value that orjson or msgspec refuses only
because it holds an ``int`` outside 64 bits (an id a client sent, a factorial)
is written as format 0x04 instead, which is slower but exact. Anything else
they refuse is still a ``CacheSerializationError``.

Compression: bodies of ``compress_threshold`` bytes or more (default 1 KiB)
are zlib-compressed at level 1. Measured on this machine class, level 1 costs
~5 µs at 1 KiB and shrinks typical JSON 5-7x (level 6 costs twice as much for
~10% more); below 1 KiB the saving does not pay for the fixed cost.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import zlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import orjson

from tenfold.cache._errors import CacheSerializationError

try:
    import msgspec
except ImportError:  # pragma: no cover - msgspec is optional
    msgspec = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_COMPRESS_THRESHOLD",
    "MsgpackSerializer",
    "OrjsonSerializer",
    "PickleSerializer",
    "Serializer",
]

DEFAULT_COMPRESS_THRESHOLD = 1024
_JSON, _MSGPACK, _PICKLE, _WIDE_JSON = 0x01, 0x02, 0x03, 0x04
# What orjson and MessagePack can write: int64 and uint64.
_NARROWEST, _WIDEST = -(2**63), 2**64 - 1
_ZLIB = 0x80
_FORMAT_MASK = 0x0F
_LEVEL = 1


class Serializer(Protocol):
    """Turns a value into L2 bytes and back."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


def _default(value: Any) -> Any:
    """Types orjson/msgspec do not know natively."""
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot cache a value of type {type(value).__name__}")


def _holds_wide_int(value: Any) -> bool:
    """Whether ``value`` holds an ``int`` that no 64-bit format can write."""
    if isinstance(value, int) and not isinstance(value, bool):
        return not _NARROWEST <= value <= _WIDEST
    if isinstance(value, dict):
        return any(_holds_wide_int(k) or _holds_wide_int(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_wide_int(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_holds_wide_int(getattr(value, f.name)) for f in dataclasses.fields(value))
    dump = getattr(value, "model_dump", None)
    return dump is not None and _holds_wide_int(dump(mode="json"))


def _wide_default(value: Any) -> Any:
    """What the standard ``json`` cannot write, in the form orjson gives it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if dump is not None or isinstance(value, set | frozenset | Decimal):
        return _default(value)
    # A datetime, UUID, Enum...: orjson's own rendering, so both formats read back alike.
    return orjson.loads(orjson.dumps(value, default=_default))


def _encode_wide(value: Any) -> bytes:
    return json.dumps(value, default=_wide_default, separators=(",", ":")).encode("ascii")


def _decode_wide(body: bytes | memoryview) -> Any:
    return json.loads(bytes(body))


def _decode_msgpack(body: bytes | memoryview) -> Any:
    if msgspec is None:
        raise CacheSerializationError("a MessagePack entry needs msgspec: pip install msgspec")
    return _MSGPACK_DECODER.decode(body)


def _decode_pickle_refused(body: bytes | memoryview) -> Any:
    raise CacheSerializationError(
        "refusing to unpickle a cache entry: create the serializer with allow_pickle=True"
    )


_MSGPACK_DECODER = msgspec.msgpack.Decoder() if msgspec is not None else None
_ENCODE_ERRORS: tuple[type[Exception], ...] = (
    TypeError,
    ValueError,
    OverflowError,
    RecursionError,
    pickle.PicklingError,
    AttributeError,  # pickling a local object
    *((msgspec.EncodeError,) if msgspec is not None else ()),
)


class _Codec:
    """Header, compression and format dispatch shared by the serializers."""

    _format: int = _JSON

    def __init__(
        self,
        *,
        compress_threshold: int | None = DEFAULT_COMPRESS_THRESHOLD,
        allow_pickle: bool = False,
    ) -> None:
        self.compress_threshold = compress_threshold
        self.allow_pickle = allow_pickle
        self._decoders: dict[int, Callable[[Any], Any]] = {
            _JSON: orjson.loads,
            _WIDE_JSON: _decode_wide,
            _MSGPACK: _decode_msgpack,
            _PICKLE: pickle.loads if allow_pickle else _decode_pickle_refused,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(compress_threshold={self.compress_threshold!r})"

    def _encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def dumps(self, value: Any) -> bytes:
        """``value`` as header + body (compressed when large); raises CacheSerializationError."""
        fmt = self._format
        try:
            body = self._encode(value)
        except _ENCODE_ERRORS as exc:
            try:
                if not _holds_wide_int(value):
                    raise
                fmt, body = _WIDE_JSON, _encode_wide(value)
            except _ENCODE_ERRORS:
                raise CacheSerializationError(
                    f"cannot serialize {type(value).__name__}: {exc}"
                ) from exc
        threshold = self.compress_threshold
        if threshold is not None and len(body) >= threshold:
            return bytes((fmt | _ZLIB,)) + zlib.compress(body, _LEVEL)
        return bytes((fmt,)) + body

    def loads(self, data: bytes) -> Any:
        """The value in ``data``; raises CacheSerializationError if it is not a valid entry."""
        try:
            header = data[0]
            body = memoryview(data)[1:]
            if header & _ZLIB:
                body = zlib.decompress(body)  # type: ignore[assignment]
            decode = self._decoders[header & _FORMAT_MASK]
        except (IndexError, KeyError, zlib.error) as exc:
            raise CacheSerializationError("not a tenfold cache entry") from exc
        try:
            return decode(body)
        except CacheSerializationError:
            raise
        except Exception as exc:  # each decoder has its own error types; all mean "corrupt"
            raise CacheSerializationError("corrupt cache entry") from exc


class OrjsonSerializer(_Codec):
    """JSON via orjson (the default). Round trip gives JSON types back (lists, str for dates)."""

    _format = _JSON

    def _encode(self, value: Any) -> bytes:
        return orjson.dumps(value, default=_default)


class MsgpackSerializer(_Codec):
    """MessagePack via msgspec: smaller entries, keeps bytes and datetimes."""

    _format = _MSGPACK

    def __init__(
        self,
        *,
        compress_threshold: int | None = DEFAULT_COMPRESS_THRESHOLD,
        allow_pickle: bool = False,
    ) -> None:
        if msgspec is None:
            raise ImportError("MsgpackSerializer needs msgspec: pip install 'tenfold[msgpack]'")
        super().__init__(compress_threshold=compress_threshold, allow_pickle=allow_pickle)
        self._encoder = msgspec.msgpack.Encoder(enc_hook=_default)

    def _encode(self, value: Any) -> bytes:
        return self._encoder.encode(value)


class PickleSerializer(_Codec):
    """Any picklable object. Opt-in only: never read pickles from a Redis others can write."""

    _format = _PICKLE

    def __init__(self, *, compress_threshold: int | None = DEFAULT_COMPRESS_THRESHOLD) -> None:
        super().__init__(compress_threshold=compress_threshold, allow_pickle=True)

    def _encode(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
