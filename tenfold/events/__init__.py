"""Event sourcing: an event store with a global order no subscriber can skip.

    EventStore            append with optimistic concurrency, read a stream,
                          read and follow the global log (``platform.events``)
    NewEvent              an event to append; RecordedEvent, as stored
    Position, START       places in the global log, and before its first event
    Appended              what an append wrote
    ConcurrencyError      the stream was not at the expected version (409)
    Upcasters             old event schema versions migrated on read
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

from tenfold.events._errors import ConcurrencyError
from tenfold.events._extension import EventsExtension
from tenfold.events._follow import ProjectionRunner
from tenfold.events._model import START, Appended, NewEvent, Position, RecordedEvent
from tenfold.events._projection import (
    Projection,
    ProjectionError,
    Projections,
    ProjectionStatus,
)
from tenfold.events._settings import EventsSettings
from tenfold.events._store import EventStore, context_metadata
from tenfold.events._tables import create_tables, metadata
from tenfold.events._upcast import Upcast, Upcasters

__all__ = [
    "START",
    "Appended",
    "ConcurrencyError",
    "EventStore",
    "EventsExtension",
    "EventsSettings",
    "NewEvent",
    "Position",
    "Projection",
    "ProjectionError",
    "ProjectionRunner",
    "ProjectionStatus",
    "Projections",
    "RecordedEvent",
    "Upcast",
    "Upcasters",
    "context_metadata",
    "create_tables",
    "metadata",
]
