"""Idempotency keys for POST/PATCH (Stripe semantics, IETF Idempotency-Key draft).

    IdempotentSession        FastAPI dependency: a write session that reserves the
                             key, and stores the response in the same transaction
    idempotent_session(cfg)  the same dependency with an ``IdempotencyConfig``
    IdempotentRoute          the route class those endpoints need
    idempotency_key(store)   dependency for handlers without DB writes, keyed in an
                             IdempotencyStore: MemoryStore or RedisStore (without
                             one, the app's)
    IdempotencyComponent     the app's defaults and store (TENFOLD_IDEMPOTENCY__*),
                             at ``platform.idempotency``
    IdempotencyConfig        header, required, ttl, methods, api_key_header, clock
    StoredResponse           what is stored and replayed
    idempotency_table, metadata, create_table
                             the storage table (add ``metadata`` to Alembic)
    IdempotencyKeyMissing (400), IdempotencyScopeMissing (401),
    IdempotencyKeyInFlight (409), IdempotencyKeyMismatch (422)
    PROBLEMS                 how those are answered, for a ``tenfold.web.ProblemRegistry``

See docs/idempotency.md.
"""

from tenfold.idempotency._component import IdempotencyComponent
from tenfold.idempotency._dependency import idempotency_key
from tenfold.idempotency._errors import (
    PROBLEMS,
    IdempotencyKeyInFlight,
    IdempotencyKeyMismatch,
    IdempotencyKeyMissing,
    IdempotencyScopeMissing,
)
from tenfold.idempotency._extension import IdempotencyExtension
from tenfold.idempotency._response import REPLAYED_HEADER, StoredResponse
from tenfold.idempotency._session import (
    IdempotencyConfig,
    IdempotentRoute,
    IdempotentSession,
    idempotent_session,
)
from tenfold.idempotency._settings import IdempotencySettings
from tenfold.idempotency._stores import IdempotencyStore, MemoryStore, RedisStore
from tenfold.idempotency._table import create_table, idempotency_table, metadata

__all__ = [
    "PROBLEMS",
    "REPLAYED_HEADER",
    "IdempotencyComponent",
    "IdempotencyConfig",
    "IdempotencyExtension",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyMismatch",
    "IdempotencyKeyMissing",
    "IdempotencyScopeMissing",
    "IdempotencySettings",
    "IdempotencyStore",
    "IdempotentRoute",
    "IdempotentSession",
    "MemoryStore",
    "RedisStore",
    "StoredResponse",
    "create_table",
    "idempotency_key",
    "idempotency_table",
    "idempotent_session",
    "metadata",
]
