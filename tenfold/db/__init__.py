"""The data layer: pools, primary/replica routing, read-your-writes, shards and more.

    Database                 the component (``db``): routers, shards, health, metrics
    Router                   one database's primary and replicas (``db.shard(key)``)
    TenfoldSession           the AsyncSession every session is; maps driver errors;
                             ``session.after_commit(fn)`` runs ``fn`` once committed
    ConsistencyMiddleware    read-your-writes token in (header/cookie) and out
    DbSession, ReadSession   FastAPI dependencies (``get_session``, ``get_read_session``)
    BatchLoader              N+1 killer: one query per tick of ``load(key)`` calls
    Paginator, Page, Filter  keyset pagination with signed cursors
    jump_hash, key_hash      the shard mapping
    migrations               Alembic verbs behind ``tenfold db ...``

See docs/db.md.
"""

from tenfold.db import migrations
from tenfold.db._consistency import ConsistencyMiddleware, format_token, parse_token
from tenfold.db._cursor import Cursor, CursorCodec
from tenfold.db._database import Database
from tenfold.db._deps import DbSession, ReadSession, get_database, get_read_session, get_session
from tenfold.db._errors import map_error
from tenfold.db._extension import DatabaseExtension
from tenfold.db._loader import BatchLoader
from tenfold.db._metrics import PoolStats
from tenfold.db._pagination import Filter, Page, Paginator
from tenfold.db._router import Router
from tenfold.db._session import AfterCommit, TenfoldSession
from tenfold.db._settings import DatabaseSettings, ShardSettings
from tenfold.db._sharding import jump_hash, key_hash

__all__ = [
    "AfterCommit",
    "BatchLoader",
    "ConsistencyMiddleware",
    "Cursor",
    "CursorCodec",
    "Database",
    "DatabaseExtension",
    "DatabaseSettings",
    "DbSession",
    "Filter",
    "Page",
    "Paginator",
    "PoolStats",
    "ReadSession",
    "Router",
    "ShardSettings",
    "TenfoldSession",
    "format_token",
    "get_database",
    "get_read_session",
    "get_session",
    "jump_hash",
    "key_hash",
    "map_error",
    "migrations",
    "parse_token",
]
