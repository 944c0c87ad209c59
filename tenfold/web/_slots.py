"""The ordered middleware slots of a tenfold app, declared once.

Outermost first::

    REQUEST_CONTEXT   request id, context, RED metrics, access log
    HTTP              client behind trusted proxies (TENFOLD_HTTP__*)
    PROBLEM           an unhandled exception becomes a 500 problem
    IN_FLIGHT         counts requests so shutdown can drain them
    AUTHENTICATION    resolves the principal (the limiter and the HTTP cache need it)
    CONSISTENCY       read-your-writes token in and out
    RATE_LIMIT        429 before the handler (and before a cached response is served)
    HTTP_CACHE        cached responses, ETag/304
    APPLICATION       the application's own middleware

An extension places its middleware in a slot; within a slot, middleware keep
the order of their extensions (dependencies first), then declaration order.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Slot"]


class Slot(IntEnum):
    """Where in the stack a middleware runs; lower runs first (outermost)."""

    REQUEST_CONTEXT = 100
    HTTP = 150
    PROBLEM = 200
    IN_FLIGHT = 300
    AUTHENTICATION = 400
    CONSISTENCY = 500
    RATE_LIMIT = 600
    HTTP_CACHE = 700
    APPLICATION = 800
