"""Request-scoped context carried in a contextvar.

The request id, the user and the read-your-writes consistency token travel
with the task that serves a request: logs, outbound calls, jobs and WebSocket
sessions read them from here.

One mutable ``RequestContext`` per request sits in one contextvar. It is
mutable on purpose: FastAPI runs sync dependencies in a thread with a *copy*
of the context, and a value set there by ``ContextVar.set`` would never reach
the middleware that writes the response header. Mutating the shared object
does.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = [
    "RequestContext",
    "bind_context",
    "current_consistency_token",
    "current_context",
    "current_request_id",
    "current_user_id",
    "reset_context",
    "set_consistency_token",
    "set_user_id",
]


class RequestContext:
    """What tenfold knows about the request being served."""

    __slots__ = ("consistency_lsn", "request_id", "user_id")

    def __init__(
        self,
        request_id: str | None = None,
        user_id: str | None = None,
        consistency_lsn: int | None = None,
    ) -> None:
        self.request_id = request_id
        self.user_id = user_id
        # The highest primary LSN this request (or its client) is known to have written.
        self.consistency_lsn = consistency_lsn

    def __repr__(self) -> str:
        return (
            f"RequestContext(request_id={self.request_id!r}, user_id={self.user_id!r}, "
            f"consistency_lsn={self.consistency_lsn!r})"
        )


_context: ContextVar[RequestContext | None] = ContextVar("tenfold_context", default=None)


def bind_context(ctx: RequestContext) -> Token[RequestContext | None]:
    """Make ``ctx`` current; pass the token to ``reset_context`` when done."""
    return _context.set(ctx)


def reset_context(token: Token[RequestContext | None]) -> None:
    _context.reset(token)


def current_context() -> RequestContext | None:
    return _context.get()


def current_request_id() -> str | None:
    """The id of the request being served, or ``None`` outside a request."""
    ctx = _context.get()
    return ctx.request_id if ctx is not None else None


def current_user_id() -> str | None:
    ctx = _context.get()
    return ctx.user_id if ctx is not None else None


def set_user_id(user_id: str | None) -> None:
    """Record the authenticated user for logs and per-user policies."""
    ctx = _context.get()
    if ctx is None:
        ctx = RequestContext()
        _context.set(ctx)
    ctx.user_id = user_id


def current_consistency_token() -> int | None:
    """The WAL position (as an integer LSN) this request must be able to read."""
    ctx = _context.get()
    return ctx.consistency_lsn if ctx is not None else None


def set_consistency_token(lsn: int | None) -> None:
    """Raise the current consistency floor to ``lsn``; it never goes down."""
    if lsn is None:
        return
    ctx = _context.get()
    if ctx is None:
        ctx = RequestContext()
        _context.set(ctx)
    if ctx.consistency_lsn is None or lsn > ctx.consistency_lsn:
        ctx.consistency_lsn = lsn
