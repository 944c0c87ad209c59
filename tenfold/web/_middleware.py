"""``ProblemMiddleware``: the last line before an exception escapes the app.

Starlette's own catch-all (``ServerErrorMiddleware``) sits outside every user
middleware, where the request context is already gone and the answer is
text/plain. This layer sits inside the request-id and telemetry middleware,
so the 500 it produces is problem+json, carries the request id, and is
counted and logged with its status.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenfold.web._problems import problem_for_exception
from tenfold.web._registry import ProblemRegistry

__all__ = ["ProblemMiddleware"]


class ProblemMiddleware:
    """Turns an exception raised below it into a problem+json response.

    ``HTTPException`` and the classes of ``problems`` (they can come from
    middleware, outside FastAPI's handlers) keep their problem; anything else
    is a 500 with a generic detail while the stack goes to the log. If the
    response has already started the exception is re-raised: the server must
    abort it.
    """

    def __init__(self, app: ASGIApp, *, problems: ProblemRegistry | None = None) -> None:
        self.app = app
        self.problems = problems

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        def send_tracking(message: Message) -> object:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            return send(message)

        try:
            await self.app(scope, receive, send_tracking)  # type: ignore[arg-type]
        except Exception as exc:
            response = problem_for_exception(exc, self.problems)
            if started:
                raise
            await response(scope, receive, send)
