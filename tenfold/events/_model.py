"""The values of the event store: positions, events to append, recorded events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["START", "Appended", "NewEvent", "Position", "RecordedEvent"]


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the global log: the appending transaction's id, then the row's sequence.

    Positions compare in log order. ``str(p)`` is ``"tx.seq"`` and
    ``Position.parse`` reads it back, for checkpoints kept outside the
    database. On SQLite ``tx`` is always 0 (one writer at a time commits in
    sequence order); on PostgreSQL it is the writer's ``pg_current_xact_id()``
    (see docs/events.md, "The ordering guarantee").
    """

    tx: int
    seq: int

    def __str__(self) -> str:
        return f"{self.tx}.{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """The position ``str(position)`` wrote; ValueError for anything else."""
        tx, sep, seq = text.partition(".")
        if not sep:
            raise ValueError(f"not a position: {text!r}")
        return cls(int(tx), int(seq))


#: Before the first event: read the whole log from here.
START = Position(0, 0)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its type, its data (JSON-ready) and optional extras.

    ``schema_version`` defaults to the type's current version in the store's
    ``Upcasters`` (1 when it has none). ``metadata`` is merged over the
    context's (request id, correlation and causation ids, principal).
    """

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the store holds it, upcast to its type's current schema version."""

    id: str
    stream_id: str
    version: int
    position: Position
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    #: Seconds since the epoch, from the appending process's clock.
    recorded_at: float

    @property
    def timestamp(self) -> datetime:
        """``recorded_at`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.recorded_at, UTC)


@dataclass(frozen=True, slots=True)
class Appended:
    """What an append wrote: the stream's new version and the last event's position."""

    stream_id: str
    version: int
    position: Position
