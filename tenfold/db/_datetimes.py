"""One form for ``DateTime(timezone=True)`` on both profiles: aware, in UTC.

PostgreSQL's ``timestamptz`` stores an instant and asyncpg reads it back as
an aware ``datetime`` in UTC. SQLite has no time zone type: SQLAlchemy's
SQLite ``DATETIME`` writes the wall-clock text of the value, dropping its
offset (``12:00+02:00`` is stored as ``12:00``, a different instant), and
reads it back naive. So the same row serialised as ``"...T10:00:00Z"`` on one
profile and ``"...T12:00:00"`` on the other.

``utc_datetimes(engine)`` makes a SQLite engine treat ``DateTime(timezone=True)``
as PostgreSQL does: an aware value is converted to UTC before it is written,
a naive one is taken as UTC (as asyncpg does), and values are read back aware
in UTC. Columns without ``timezone=True`` are left alone (naive on both).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.sqlite import DATETIME
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["UtcDateTime", "utc_datetimes"]

Processor = Callable[[Any], Any] | None


class UtcDateTime(DATETIME):
    """SQLite's ``DATETIME``; with ``timezone=True``, written and read in UTC."""

    def bind_processor(self, dialect: Any) -> Processor:
        process = super().bind_processor(dialect)
        if not self.timezone or process is None:
            return process

        def bind(value: Any) -> Any:
            if isinstance(value, dt.datetime) and value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return process(value)

        return bind

    def result_processor(self, dialect: Any, coltype: object) -> Processor:
        process = super().result_processor(dialect, coltype)
        if not self.timezone:
            return process

        def result(value: Any) -> Any:
            if process is not None:
                value = process(value)
            if isinstance(value, dt.datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return value

        return result


def utc_datetimes(engine: AsyncEngine) -> None:
    """Make ``engine``'s SQLite dialect read and write ``DateTime(timezone=True)`` in UTC."""
    dialect = engine.sync_engine.dialect
    # An instance-level colspecs is what type_descriptor() consults (see its docstring):
    # every DateTime this engine binds or reads is adapted to UtcDateTime.
    dialect.colspecs = {**dialect.colspecs, sqltypes.DateTime: UtcDateTime}  # type: ignore[attr-defined]
