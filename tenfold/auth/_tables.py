"""The auth tables' ``metadata``: each part of the package defines its tables on it.

Add ``tenfold.auth.metadata`` to Alembic's ``target_metadata`` (or copy the tables
into a migration). ``create_tables`` is for tests and the embedded profile, where
the auth extension calls it when the platform starts.
"""

from __future__ import annotations

import sqlalchemy as sa

from tenfold.db import Database

__all__ = ["create_tables", "metadata"]

metadata = sa.MetaData()


async def create_tables(db: Database) -> None:
    """Create the auth tables defined so far on ``db``'s primary where they do not exist."""
    async with db.session() as session:
        await session.run_sync(lambda s: metadata.create_all(s.connection()))
