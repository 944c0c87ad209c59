"""``idempotency_key(store)``: the key dependency for handlers that do not write the DB.

It reserves the key in an ``IdempotencyStore`` before the handler runs,
stores the response ``IdempotentRoute`` captured when it returns, and
releases the reservation when it raises. Use ``IdempotentSession`` instead
when the side effects are database writes: only that commits them together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from fastapi import Request

from tenfold.idempotency._response import StoredResponse
from tenfold.idempotency._session import IdempotencyConfig, Replay, identify
from tenfold.idempotency._stores import IdempotencyStore

__all__ = ["idempotency_key"]


def idempotency_key(
    store: IdempotencyStore, config: IdempotencyConfig | None = None
) -> Callable[[Request], AsyncIterator[None]]:
    """A dependency (use with ``Depends(..., scope="function")``) keyed in ``store``."""
    config = config or IdempotencyConfig()

    async def reserve_idempotency_key(request: Request) -> AsyncIterator[None]:
        slot, identity = await identify(request, config)
        if identity is None:
            yield
            return
        scope, key, printed = identity
        stored = await store.reserve(scope, key, printed, config.lease)
        if stored is not None:
            raise Replay(stored)
        try:
            yield
        except BaseException:
            await store.release(scope, key, printed)
            raise
        if slot.response is None:
            await store.release(scope, key, printed)
            return
        response = StoredResponse.capture(slot.response)
        await store.complete(scope, key, printed, response, config.ttl)

    return reserve_idempotency_key
