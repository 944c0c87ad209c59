"""Where the relay publishes events and consumers read them: a Redis stream, or memory.

    target.publish(events)                  append, in order (the relay)
    await source.read(after, count)         entries after an entry id (a consumer)
    await source.wait(timeout)              until more may be there

Both kinds have the same shape: an append-only stream whose entries have
increasing ids, read from an id on, trimmed to about ``maxlen`` entries.
An entry id ``ms-seq`` is held as a ``Position(ms, seq)``, so a consumer
keeps its place in the stream in the event store's checkpoints table.

``RedisStream`` XADDs to one key (``<app name>:events`` by default) with
``MAXLEN ~``. ``MemoryStream`` is the embedded profile's stream: it lives in
the process, so only consumers in that process read it. The platform's
``LocalBus`` is not used for it: a bus delivers to the listeners present at
publication and keeps nothing, while a consumer must be able to resume from
where it stopped, as it does on Redis.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import orjson

from tenfold.events._model import Position, RecordedEvent
from tenfold.redis._clients import REDIS_ERRORS, unavailable

__all__ = [
    "EventSource",
    "EventTarget",
    "MemoryStream",
    "RedisStream",
    "decode_event",
    "encode_event",
]

#: Entries one XREAD returns at most when the caller does not say.
_COUNT = 100


@runtime_checkable
class EventTarget(Protocol):
    """Where a relay publishes; ``name`` names the relay's checkpoint (``relay:<name>``)."""

    name: str

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        """Append ``events`` in this order, or raise (then some may have been appended)."""
        ...


@runtime_checkable
class EventSource(Protocol):
    """What a consumer reads: the entries after an entry id, in order."""

    name: str

    async def read(self, after: Position, count: int) -> list[tuple[Position, RecordedEvent]]:
        """Up to ``count`` (entry id, event) pairs after ``after``, oldest first."""
        ...

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - a poll, not a deadline
        """Return when entries may have been appended, or after ``timeout`` seconds."""
        ...


def encode_event(event: RecordedEvent) -> dict[str, str]:
    """The stream entry's fields for ``event`` (every value a string)."""
    return {
        "id": event.id,
        "stream_id": event.stream_id,
        "version": str(event.version),
        "position": str(event.position),
        "type": event.type,
        "schema_version": str(event.schema_version),
        "data": orjson.dumps(event.data).decode(),
        "metadata": orjson.dumps(event.metadata).decode(),
        "recorded_at": repr(event.recorded_at),
    }


def decode_event(fields: dict[Any, Any]) -> RecordedEvent:
    """The event ``encode_event`` wrote (field names and values as str or bytes)."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    return RecordedEvent(
        id=text["id"],
        stream_id=text["stream_id"],
        version=int(text["version"]),
        position=Position.parse(text["position"]),
        type=text["type"],
        schema_version=int(text["schema_version"]),
        data=orjson.loads(text["data"]),
        metadata=orjson.loads(text["metadata"]),
        recorded_at=float(text["recorded_at"]),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_position(entry_id: Any) -> Position:
    """A Redis entry id (``ms-seq``) as a position."""
    ms, _, seq = _text(entry_id).partition("-")
    return Position(int(ms), int(seq or 0))


class RedisStream:
    """One Redis stream key, published to with ``XADD ... MAXLEN ~ maxlen`` (0: no trim).

    ``client`` is the platform's (``RedisHub.client``), standalone or Cluster:
    the stream is one key, so on a Cluster it lives on one slot's node.
    """

    def __init__(self, client: Any, key: str, *, maxlen: int = 0) -> None:
        self.client = client
        self.key = key
        self.name = key
        self.maxlen = maxlen

    def __repr__(self) -> str:
        return f"<RedisStream {self.key!r} maxlen~{self.maxlen}>"

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        trim = {"maxlen": self.maxlen, "approximate": True} if self.maxlen else {}
        try:
            # One round trip per batch; not MULTI: entries are appended in pipeline order
            # anyway, and a failure part-way is a republish of the batch, which consumers
            # deduplicate.
            async with self.client.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.xadd(self.key, encode_event(event), **trim)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            raise unavailable("XADD", exc) from exc

    async def read(
        self, after: Position, count: int = _COUNT
    ) -> list[tuple[Position, RecordedEvent]]:
        try:
            # Never BLOCK: the hub's commands time out in a fraction of a second, and a
            # blocked read would hold one of its pooled connections. ``wait`` polls instead.
            reply = await self.client.xread({self.key: f"{after.tx}-{after.seq}"}, count=count)
        except REDIS_ERRORS as exc:
            raise unavailable("XREAD", exc) from exc
        entries = reply[0][1] if reply else []
        return [(entry_position(entry_id), decode_event(fields)) for entry_id, fields in entries]

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - a poll, not a deadline
        await asyncio.sleep(timeout)


class MemoryStream:
    """An in-process stream with Redis Streams' semantics: ids ``0-1``, ``0-2``, ...

    Keeps the last ``maxlen`` entries (0: all of them).
    """

    def __init__(self, name: str = "memory", *, maxlen: int = 0) -> None:
        self.name = name
        self.maxlen = maxlen
        self._entries: deque[tuple[Position, RecordedEvent]] = deque(maxlen=maxlen or None)
        self._next = 1
        self._appended = asyncio.Event()

    def __repr__(self) -> str:
        return f"<MemoryStream {self.name!r} entries={len(self._entries)}>"

    def __len__(self) -> int:
        return len(self._entries)

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            self._entries.append((Position(0, self._next), event))
            self._next += 1
        woken, self._appended = self._appended, asyncio.Event()
        woken.set()

    async def read(
        self, after: Position, count: int = _COUNT
    ) -> list[tuple[Position, RecordedEvent]]:
        if not self._entries:
            return []
        first = self._entries[0][0].seq
        start = max(after.seq + 1 - first, 0) if after.tx == 0 else len(self._entries)
        return [self._entries[i] for i in range(start, min(start + count, len(self._entries)))]

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - a poll, not a deadline
        try:
            await asyncio.wait_for(self._appended.wait(), timeout)
        except TimeoutError:
            pass
