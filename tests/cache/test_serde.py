"""Serializers: round trips, the header byte, compression, and pickle only by opt-in."""

from __future__ import annotations

import datetime as dt
import pickle
import uuid
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from tenfold.cache._errors import CacheSerializationError
from tenfold.cache._serde import (
    MsgpackSerializer,
    OrjsonSerializer,
    PickleSerializer,
    Serializer,
)

VALUE = {"id": 42, "name": "Zoë", "score": 12.5, "tags": ["a", "b"], "none": None}


class Player(BaseModel):
    name: str
    joined: dt.date


@dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize("serializer", [OrjsonSerializer(), MsgpackSerializer()])
def test_round_trip_of_plain_values(serializer: Serializer) -> None:
    """JSON-able values come back equal."""
    for value in [VALUE, [1, 2, 3], "text", 7, None, True, {"nested": {"deep": [1.5]}}]:
        assert serializer.loads(serializer.dumps(value)) == value


def test_header_byte_names_the_format() -> None:
    """The first byte says JSON (1), MessagePack (2) or pickle (3)."""
    assert OrjsonSerializer().dumps(VALUE)[0] == 0x01
    assert MsgpackSerializer().dumps(VALUE)[0] == 0x02
    assert PickleSerializer().dumps(VALUE)[0] == 0x03


def test_pydantic_models_dataclasses_and_uuids_are_stored_as_json() -> None:
    """Pydantic models are stored via model_dump(mode="json"); dataclasses and UUIDs natively."""
    u = uuid.UUID(int=1)
    data = OrjsonSerializer().dumps(
        {"p": Player(name="ann", joined=dt.date(2024, 5, 1)), "pt": Point(1, 2), "u": u}
    )
    assert OrjsonSerializer().loads(data) == {
        "p": {"name": "ann", "joined": "2024-05-01"},
        "pt": {"x": 1, "y": 2},
        "u": str(u),
    }


def test_msgpack_keeps_bytes_and_datetimes() -> None:
    """MessagePack round-trips bytes and aware datetimes."""
    when = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    serializer = MsgpackSerializer()
    assert serializer.loads(serializer.dumps({"b": b"\x00\xff", "t": when})) == {
        "b": b"\x00\xff",
        "t": when,
    }


@pytest.mark.parametrize("serializer", [OrjsonSerializer(), MsgpackSerializer()])
def test_large_values_are_compressed_small_ones_not(serializer: Serializer) -> None:
    """At or above the threshold the body is zlib'd (header bit 0x80); below it is not."""
    big = {"rows": [{"id": i, "team": "Kegstand Kings"} for i in range(200)]}
    small = serializer.dumps(VALUE)
    large = serializer.dumps(big)
    assert not small[0] & 0x80
    assert large[0] & 0x80
    assert len(large) < len(OrjsonSerializer(compress_threshold=None).dumps(big)) / 3
    assert serializer.loads(large) == big


def test_threshold_is_configurable() -> None:
    """compress_threshold=0 compresses everything; None never compresses."""
    assert OrjsonSerializer(compress_threshold=0).dumps("x")[0] == 0x81
    assert OrjsonSerializer(compress_threshold=None).dumps("x" * 100_000)[0] == 0x01


def test_any_serializer_reads_json_and_msgpack_entries() -> None:
    """A reader decodes by the header, so switching the default format needs no flush."""
    assert OrjsonSerializer().loads(MsgpackSerializer().dumps(VALUE)) == VALUE
    assert MsgpackSerializer().loads(OrjsonSerializer().dumps(VALUE)) == VALUE


@pytest.mark.parametrize("serializer", [OrjsonSerializer(), MsgpackSerializer()])
def test_integers_beyond_64_bits_round_trip_exactly(serializer: Serializer) -> None:
    """An int neither orjson nor MessagePack can write is stored as standard JSON, exactly."""
    value = {"id": 2**64 + 1, "low": -(2**63) - 1, "ok": 2**64 - 1, "at": [Point(2**70, 1)]}
    data = serializer.dumps(value)
    assert data[0] == 0x04
    assert serializer.loads(data) == {
        "id": 2**64 + 1,
        "low": -(2**63) - 1,
        "ok": 2**64 - 1,
        "at": [{"x": 2**70, "y": 1}],
    }
    assert OrjsonSerializer().loads(data) == MsgpackSerializer().loads(data)
    assert serializer.dumps(2**64 - 1)[0] != 0x04  # what fits keeps the fast format
    with pytest.raises(CacheSerializationError):
        serializer.dumps({"n": 2**64, "x": object()})  # still refused for the other part


def test_pickle_entries_are_refused_without_opt_in() -> None:
    """A pickle found in Redis is not unpickled unless the reader allows it."""
    data = PickleSerializer().dumps(Point(1, 2))
    with pytest.raises(CacheSerializationError, match="allow_pickle"):
        OrjsonSerializer().loads(data)
    assert OrjsonSerializer(allow_pickle=True).loads(data) == Point(1, 2)
    assert PickleSerializer().loads(data) == Point(1, 2)


def test_unserializable_value_raises_cache_serialization_error() -> None:
    """A value the format cannot hold fails with CacheSerializationError, cause attached."""
    for serializer in (OrjsonSerializer(), MsgpackSerializer()):
        with pytest.raises(CacheSerializationError) as caught:
            serializer.dumps({"x": object()})
        assert isinstance(caught.value.__cause__, TypeError)
    with pytest.raises(CacheSerializationError):
        PickleSerializer().dumps(lambda: None)


@pytest.mark.parametrize(
    "data", [b"", b"\x07{}", b"\x01{not json", b"\x81not zlib", b"\x02\xc1", b"\x83" + b"x"]
)
def test_corrupt_entries_raise_cache_serialization_error(data: bytes) -> None:
    """Empty, unknown-format, truncated or garbled bytes raise CacheSerializationError."""
    with pytest.raises(CacheSerializationError):
        OrjsonSerializer(allow_pickle=True).loads(data)


def test_pickle_round_trips_any_object() -> None:
    """PickleSerializer keeps Python types (sets, dataclasses, tuples)."""
    value = {"s": {1, 2}, "p": Point(3, 4), "t": (1, "a")}
    assert PickleSerializer().loads(PickleSerializer().dumps(value)) == value
    assert pickle.loads(PickleSerializer(compress_threshold=None).dumps(value)[1:]) == value
