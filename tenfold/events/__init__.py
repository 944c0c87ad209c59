"""Event sourcing: an event store with a global order no subscriber can skip.

    EventStore            append with optimistic concurrency, read a stream,
                          read and follow the global log (``platform.events``)
    NewEvent              an event to append; RecordedEvent, as stored
    Position, START       places in the global log, and before its first event
    Appended              what an append wrote
    ConcurrencyError      the stream was not at the expected version (409); PROBLEMS,
                          how the package's errors answer as problem+json
    Aggregate, on         state rebuilt from one stream; ``@on("Type")`` handlers,
                          ``record()`` new events; ``UnknownEventType``
    Aggregates            load (latest snapshot + the events after it) and save
                          aggregates (``platform.get(Aggregates)``); ``Snapshot``
    AggregateNotFound     the stream to load has no events (404)
    Upcasters             old event schema versions migrated on read
    EventRelay            publishes committed events to a target, at least once, in
                          log order (``tenfold events relay``); RelayStats
    EventTarget           where a relay publishes; EventSource, what a consumer reads
    RedisStream           a Redis stream (XADD ... MAXLEN ~); MemoryStream, in-process;
                          encode_event/decode_event, an event as a stream entry's fields
    EventConsumer         applies published events once each, with the inbox
                          (EventHandler; ConsumedBatch, what one poll did)
    Projection            a read model built from the log, exactly once
    Projections           runs projections: catch up, wait for a position,
                          status, rebuild (``platform.get(Projections)``)
    ProjectionRunner      the long-running loop that keeps projections caught up
    ProjectionError       a handler failed: its batch was rolled back
    ProjectionStatus      a projection's checkpoint and how far behind it is
    EventsExtension       the opt-in ``events`` extension; EventsSettings
    metadata              the event store's tables, for Alembic; ``create_tables(db)``

See docs/events.md.
"""

from tenfold.events._aggregate import Aggregate, on
from tenfold.events._errors import AggregateNotFound, ConcurrencyError, UnknownEventType
from tenfold.events._extension import EventsExtension
from tenfold.events._follow import ProjectionRunner
from tenfold.events._inbox import ConsumedBatch, EventConsumer, EventHandler
from tenfold.events._model import START, Appended, NewEvent, Position, RecordedEvent
from tenfold.events._problems import PROBLEMS
from tenfold.events._projection import (
    Projection,
    ProjectionError,
    Projections,
    ProjectionStatus,
)
from tenfold.events._relay import EventRelay, RelayStats
from tenfold.events._settings import EventsSettings
from tenfold.events._snapshots import Aggregates, Snapshot
from tenfold.events._store import EventStore, context_metadata
from tenfold.events._streams import (
    EventSource,
    EventTarget,
    MemoryStream,
    RedisStream,
    decode_event,
    encode_event,
)
from tenfold.events._tables import create_tables, metadata
from tenfold.events._upcast import Upcast, Upcasters

__all__ = [
    "PROBLEMS",
    "START",
    "Aggregate",
    "AggregateNotFound",
    "Aggregates",
    "Appended",
    "ConcurrencyError",
    "ConsumedBatch",
    "EventConsumer",
    "EventHandler",
    "EventRelay",
    "EventSource",
    "EventStore",
    "EventTarget",
    "EventsExtension",
    "EventsSettings",
    "MemoryStream",
    "NewEvent",
    "Position",
    "Projection",
    "ProjectionError",
    "ProjectionRunner",
    "ProjectionStatus",
    "Projections",
    "RecordedEvent",
    "RedisStream",
    "RelayStats",
    "Snapshot",
    "UnknownEventType",
    "Upcast",
    "Upcasters",
    "context_metadata",
    "create_tables",
    "decode_event",
    "encode_event",
    "metadata",
    "on",
]
