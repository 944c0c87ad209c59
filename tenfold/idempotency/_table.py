"""The table that holds one stored response per (scope, key), and how to create it.

Add ``metadata`` to Alembic's ``target_metadata`` (or copy the table into a
migration); ``create_table`` is for tests and the embedded profile.
"""

from __future__ import annotations

import sqlalchemy as sa

from tenfold.db import Database

__all__ = ["create_table", "idempotency_table", "metadata"]

metadata = sa.MetaData()

idempotency_table = sa.Table(
    "tenfold_idempotency_keys",
    metadata,
    # sha256 of "user:<id>" or "api-key:<sha256 of the key>": never the secret itself.
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)


async def create_table(db: Database) -> None:
    """Create the table on ``db``'s primary if it does not exist."""
    async with db.session() as session:
        await session.run_sync(lambda s: metadata.create_all(s.connection()))
