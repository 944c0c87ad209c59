"""``idempotency_key(store)``: the key dependency for handlers that do not write the DB.

It reserves the key in an ``IdempotencyStore`` before the handler runs,
stores the response ``IdempotentRoute`` captured when it returns, and
releases the reservation when it raises. Use ``IdempotentSession`` instead
when the side effects are database writes: only that commits them together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from fastapi import Request

from tenfold._context import current_consistency_token
from tenfold._errors import ConfigurationError
from tenfold.idempotency._response import StoredResponse
from tenfold.idempotency._session import IdempotencyConfig, Replay, app_config, identify
from tenfold.idempotency._stores import IdempotencyStore

__all__ = ["idempotency_key"]


def idempotency_key(
    store: IdempotencyStore | None = None, config: IdempotencyConfig | None = None
) -> Callable[[Request], AsyncIterator[None]]:
    """A dependency (use with ``Depends(..., scope="function")``) keyed in ``store``.

    Without ``store`` or ``config``, the platform's (``TENFOLD_IDEMPOTENCY__*``), of an
    app built with ``create_app``.
    """

    async def reserve_idempotency_key(request: Request) -> AsyncIterator[None]:
        cfg = config if config is not None else app_config(request)
        slot, identity = await identify(request, cfg)
        if identity is None:
            yield
            return
        keys = store if store is not None else _app_store(request)
        scope, key, printed = identity
        stored = await keys.reserve(scope, key, printed, cfg.lease)
        if stored is not None:
            raise Replay(stored)
        try:
            yield
        except BaseException:
            await keys.release(scope, key, printed)
            raise
        if slot.response is None:
            await keys.release(scope, key, printed)
            return
        # The handler's commits have raised the request's token by now: keep it for replays.
        response = StoredResponse.capture(slot.response, current_consistency_token())
        await keys.complete(scope, key, printed, response, cfg.ttl)

    return reserve_idempotency_key


def _app_store(request: Request) -> IdempotencyStore:
    from tenfold._platform import find_on
    from tenfold.idempotency._component import IdempotencyComponent

    component = find_on(request.app, IdempotencyComponent)
    if component is None:
        raise ConfigurationError(
            "idempotency_key() without a store needs an app built with tenfold.create_app() "
            "(it uses the platform's idempotency store); or pass a store"
        )
    store: IdempotencyStore = component.store
    return store
