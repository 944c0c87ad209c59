"""The jobs tables: committed task keys, the dead-letter queue, and the outbox.

Add ``metadata`` to Alembic's ``target_metadata`` (or copy the tables into a
migration). ``create_tables`` is for tests and the embedded profile, where
the jobs extension calls it when the platform starts.
"""

from __future__ import annotations

import sqlalchemy as sa

from tenfold.db import Database

__all__ = ["create_tables", "dead_letters", "metadata", "outbox", "task_keys"]

metadata = sa.MetaData()

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: One row per task run whose effect committed, written in the task's own transaction.
task_keys = sa.Table(
    "tenfold_job_keys",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("task", sa.String(200), nullable=False),
    # Seconds since the epoch; keys older than TENFOLD_JOBS__KEY_RETENTION are pruned.
    sa.Column("done_at", sa.Float, nullable=False, index=True),
)

#: Tasks that failed for good: retries exhausted, or an error that is not retried.
dead_letters = sa.Table(
    "tenfold_job_dead_letters",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(64), nullable=False, index=True),
    sa.Column("task", sa.String(200), nullable=False, index=True),
    sa.Column("queue", sa.String(200), nullable=True),
    # The arguments as JSON text, cut at TENFOLD_JOBS__DLQ_MAX_ARGS bytes (then
    # ``args_truncated`` is set and the task cannot be retried from here).
    sa.Column("args", sa.Text, nullable=False),
    sa.Column("args_truncated", sa.Boolean, nullable=False, default=False),
    sa.Column("exception", sa.String(1000), nullable=False),
    sa.Column("traceback", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("request_id", sa.String(128), nullable=True),
    # The context snapshot the task ran in (carried on to a retry from the DLQ).
    sa.Column("context", sa.JSON, nullable=True),
    sa.Column("failed_at", sa.Float, nullable=False, index=True),
    # Ids are never reused on SQLite either: a retried letter's id names no later one.
    sqlite_autoincrement=True,
)

#: Messages enqueued inside a transaction, sent after it commits (and by the relay
#: when the process died first).
outbox = sa.Table(
    "tenfold_job_outbox",
    metadata,
    # The message id the task is sent with, every time it is sent.
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("task", sa.String(200), nullable=False),
    # {"args": [...], "kwargs": {...}, "queue": ..., "priority": ..., "eta": epoch | null,
    #  "headers": {...}}
    sa.Column("message", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
)


async def create_tables(db: Database) -> None:
    """Create the jobs tables on ``db``'s primary where they do not exist."""
    async with db.session() as session:
        await session.run_sync(lambda s: metadata.create_all(s.connection()))
