"""The event store's SQL, per dialect: one statement per append, one per page of the log.

**The ordering guarantee (PostgreSQL).** Positions come from a sequence,
which hands them out when rows are inserted, not when they commit: a
transaction that took position 7 can commit after another that took 8. A
subscriber that reads ``position > last`` would deliver 8, move its
checkpoint past 7, and never see 7 once it commits. That is the classic
event-store bug.

Every row also stores its transaction's id (``pg_current_xact_id()``,
64 bits, never wraps), and the log is read in ``(tx, position)`` order, only
up to ``tx < xmin`` of the reading statement's own snapshot:

- every transaction with an id below ``xmin`` has finished: its rows are
  all visible in that snapshot, or rolled back and never will be;
- every transaction still running, or not yet started, has an id at or
  above ``xmin``, so every row that becomes visible later sorts after every
  row delivered now.

So a subscriber that reads forward from its last ``(tx, position)`` never
skips a row and never sees one twice, with no lock between writers. The
price: a long write transaction anywhere on the server holds subscribers
back (never forward) until it ends.

One more rule keeps the global order consistent with each stream's order:
an append is refused (``ConcurrencyError``) when its transaction's id is
below the id of the transaction that wrote the stream's previous event. That
only happens when a caller's transaction began writing before the stream's
previous event committed; retried, it gets a new id.

**SQLite** has one writer at a time (``BEGIN IMMEDIATE``), so positions are
handed out in commit order: ``tx`` is 0 and the order is the position's.
"""

from __future__ import annotations

import re

__all__ = [
    "PG_APPEND",
    "PG_APPEND_ONE",
    "PG_READ_ALL",
    "PG_READ_STREAM",
    "PG_VERSION",
    "SQLITE_APPEND",
    "SQLITE_READ_ALL",
    "SQLITE_READ_STREAM",
    "SQLITE_VERSION",
    "numbered",
]

# The statements below are composed from these constant fragments only, never from input
# (every value is a bound parameter): hence their ``# nosec B608``.
_COLUMNS = (
    "id::text, stream_id, version, tx, position, type, schema_version, "
    "data::text, metadata::text, recorded_at"
)

# The stream's last event (version and transaction), read once: the append goes through only
# if it is the expected version and was not written by a newer transaction than this one.
_LAST = """
WITH last AS (
    SELECT version, tx FROM tenfold_events
    WHERE stream_id = CAST(:stream_id AS text) ORDER BY version DESC LIMIT 1
)"""
_CHECK = """
WHERE coalesce((SELECT version FROM last), 0) = CAST(:expected AS int)
  AND coalesce((SELECT tx FROM last), 0) <= pg_current_xact_id()::text::bigint"""

PG_APPEND = f"""{_LAST}
INSERT INTO tenfold_events
    (tx, stream_id, version, type, schema_version, data, metadata, id, recorded_at)
SELECT pg_current_xact_id()::text::bigint, CAST(:stream_id AS text),
       CAST(:expected AS int) + e.n::int, e.type, e.schema_version,
       CAST(e.data AS jsonb), CAST(e.metadata AS jsonb), CAST(e.id AS uuid),
       CAST(:recorded_at AS float8)
FROM unnest(CAST(:types AS text[]), CAST(:schema_versions AS int[]),
            CAST(:datas AS text[]), CAST(:metas AS text[]), CAST(:ids AS text[]))
     WITH ORDINALITY AS e(type, schema_version, data, metadata, id, n){_CHECK}
ORDER BY e.n
RETURNING tx, position
"""  # nosec B608  # this module's constant fragments only; every value is bound

# One event, the common case: scalar parameters, no arrays to encode or unnest.
PG_APPEND_ONE = f"""{_LAST}
INSERT INTO tenfold_events
    (tx, stream_id, version, type, schema_version, data, metadata, id, recorded_at)
SELECT pg_current_xact_id()::text::bigint, CAST(:stream_id AS text),
       CAST(:expected AS int) + 1, CAST(:type AS text), CAST(:schema_version AS int),
       CAST(:data AS jsonb), CAST(:metadata AS jsonb), CAST(:id AS uuid),
       CAST(:recorded_at AS float8){_CHECK}
RETURNING tx, position
"""

PG_VERSION = (
    "SELECT coalesce(max(version), 0) FROM tenfold_events "
    "WHERE stream_id = CAST(:stream_id AS text)"
)

PG_READ_STREAM = f"""
SELECT {_COLUMNS} FROM tenfold_events
WHERE stream_id = CAST(:stream_id AS text)
  AND version BETWEEN CAST(:from_version AS int) AND CAST(:to_version AS int)
ORDER BY version LIMIT CAST(:limit AS bigint)
"""  # nosec B608  # this module's constant fragments only; every value is bound

# The row comparison uses the (tx, position) index as one range; xmin is taken from the
# statement's own snapshot, the one its rows are read in.
PG_READ_ALL = f"""
SELECT {_COLUMNS} FROM tenfold_events
WHERE (tx, position) > (CAST(:tx AS bigint), CAST(:seq AS bigint))
  AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
ORDER BY tx, position LIMIT CAST(:limit AS bigint)
"""  # nosec B608  # this module's constant fragments only; every value is bound

_SQLITE_COLUMNS = (
    "id, stream_id, version, tx, position, type, schema_version, data, metadata, recorded_at"
)

SQLITE_VERSION = "SELECT coalesce(max(version), 0) FROM tenfold_events WHERE stream_id = :stream_id"

SQLITE_APPEND = """
INSERT INTO tenfold_events
    (tx, stream_id, version, type, schema_version, data, metadata, id, recorded_at)
VALUES (0, :stream_id, :version, :type, :schema_version, :data, :metadata, :id, :recorded_at)
"""

SQLITE_READ_STREAM = f"""
SELECT {_SQLITE_COLUMNS} FROM tenfold_events
WHERE stream_id = :stream_id AND version >= :from_version AND version <= :to_version
ORDER BY version LIMIT :limit
"""  # nosec B608  # this module's constant fragments only; every value is bound

SQLITE_READ_ALL = f"""
SELECT {_SQLITE_COLUMNS} FROM tenfold_events
WHERE position > :seq ORDER BY position LIMIT :limit
"""  # nosec B608  # this module's constant fragments only; every value is bound


def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with ``:name`` parameters as asyncpg's ``$n``, and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return re.sub(r"(?<![:\w]):(\w+)", number, sql), tuple(names)
