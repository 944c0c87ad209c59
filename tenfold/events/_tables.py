"""The event store's tables: the log, snapshots, checkpoints and consumers' inboxes.

Add ``metadata`` to Alembic's ``target_metadata`` (or copy the tables into a
migration). ``create_tables`` is for tests and the embedded profile, where
the events extension calls it when the platform starts.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from tenfold.db import Database

__all__ = ["checkpoints", "create_tables", "events", "inbox", "metadata", "snapshots"]

metadata = sa.MetaData()

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Json = sa.JSON().with_variant(JSONB(), "postgresql")

#: The log. Written only by ``EventStore.append``, never updated.
events = sa.Table(
    "tenfold_events",
    metadata,
    # Per-row sequence: with ``tx``, the global order (see tenfold.events._postgres).
    sa.Column("position", _BigId, primary_key=True, autoincrement=True),
    # PostgreSQL: the appending transaction's pg_current_xact_id(); SQLite: 0.
    sa.Column("tx", sa.BigInteger, nullable=False),
    sa.Column("stream_id", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(255), nullable=False),
    sa.Column("schema_version", sa.SmallInteger, nullable=False),
    sa.Column("data", _Json, nullable=False),
    sa.Column("metadata", _Json, nullable=False),
    sa.Column("id", sa.Uuid, nullable=False),
    # Seconds since the epoch, from the appending process's clock.
    sa.Column("recorded_at", sa.Float, nullable=False),
    # Optimistic concurrency: two appends of one version cannot both commit. Also the
    # index that reads one stream.
    sa.UniqueConstraint("stream_id", "version", name="tenfold_events_stream_version"),
    # Positions are never reused on SQLite either: a subscriber's checkpoint names one event.
    sqlite_autoincrement=True,
)
# The global log's order: what every subscriber reads.
sa.Index("tenfold_events_order", events.c.tx, events.c.position)

#: The latest snapshot of each stream's aggregate.
snapshots = sa.Table(
    "tenfold_event_snapshots",
    metadata,
    sa.Column("stream_id", sa.String(255), primary_key=True),
    # The stream version the state includes.
    sa.Column("version", sa.Integer, nullable=False),
    # The aggregate's class name and its state's schema version: a snapshot of another
    # shape is ignored, and the aggregate loads from the log.
    sa.Column("type", sa.String(255), nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("state", _Json, nullable=False),
    sa.Column("taken_at", sa.Float, nullable=False),
)

#: Where each named consumer of the global log (projection, relay) stands.
checkpoints = sa.Table(
    "tenfold_event_checkpoints",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("tx", sa.BigInteger, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

#: The last version of each stream a consumer of published events applied (dedupe).
inbox = sa.Table(
    "tenfold_event_inbox",
    metadata,
    sa.Column("consumer", sa.String(200), primary_key=True),
    sa.Column("stream_id", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


async def create_tables(db: Database) -> None:
    """Create the event store's tables on ``db``'s primary where they do not exist."""
    async with db.session() as session:
        await session.run_sync(lambda s: metadata.create_all(s.connection()))
