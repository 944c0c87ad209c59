"""Graceful shutdown: stop being ready, then let in-flight requests finish.

The sequence (wired by ``create_app`` and ``tenfold run``): SIGTERM calls
``Lifecycle.begin_drain()``, so ``/ready`` answers 503 at once and load
balancers stop sending traffic; the server stops accepting; the app's
shutdown awaits ``wait_drained(drain_timeout)`` before closing its pools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenfold.observability import get_logger

__all__ = ["InFlightMiddleware", "Lifecycle"]

_CLOSE = (b"connection", b"close")

_log = get_logger("tenfold.health")


class Lifecycle:
    """Whether the process is draining, and how many requests it is serving."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self._idle: asyncio.Event | None = None
        self._on_drain: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"Lifecycle(draining={self.draining}, in_flight={self.in_flight})"

    def on_drain(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the drain begins: long-lived connections (WebSockets)
        are not requests in flight, and are told to go elsewhere there. It runs in the
        signal handler's thread (the loop's): it must only schedule work, never block."""
        self._on_drain.append(callback)

    def begin_drain(self) -> None:
        """Make readiness fail from now on (idempotent; safe from a signal handler)."""
        if not self.draining:
            self.draining = True
            _log.info("drain_started", in_flight=self.in_flight)
            for callback in self._on_drain:
                callback()

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def wait_drained(self, timeout: float | None) -> bool:  # noqa: ASYNC109 - answers False, never raises
        """Wait until no request is in flight; ``False`` if ``timeout`` ran out first."""
        if self.in_flight == 0:
            return True
        idle = self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                while self.in_flight > 0:
                    idle.clear()
                    await idle.wait()
        except TimeoutError:
            _log.warning("drain_timed_out", in_flight=self.in_flight, timeout=timeout)
            return False
        finally:
            self._idle = None
        return True


class InFlightMiddleware:
    """Counts in-flight HTTP requests on ``lifecycle``.

    While draining, responses also say ``Connection: close`` so keep-alive
    clients reconnect (to another instance) instead of reusing this one.
    """

    def __init__(self, app: ASGIApp, *, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lifecycle = self.lifecycle
        lifecycle.request_started()
        try:
            if lifecycle.draining:
                send = _closing(send)
            await self.app(scope, receive, send)
        finally:
            lifecycle.request_finished()


def _closing(send: Send) -> Send:
    def send_closing(message: Message) -> object:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), _CLOSE]
        return send(message)

    return send_closing  # type: ignore[return-value]
