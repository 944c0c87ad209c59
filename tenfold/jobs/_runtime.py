"""Where a worker process runs ``async def`` tasks: one event loop, one started platform.

Celery's pool processes are synchronous. Each one gets its own event loop,
created on its first async task (after the fork, so no loop or connection
crosses a process boundary), and starts the platform on it once, so that
database sessions, the cache and the Redis hub work inside tasks exactly as
in a request. ``close`` stops the platform when the process exits.

The embedded worker (``_embedded.py``) has its own runtime instead: its tasks
run on the web app's loop, with the app's started platform.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from tenfold._errors import ConfigurationError

if TYPE_CHECKING:
    from tenfold._platform import Platform
    from tenfold.db import Database

__all__ = ["WorkerRuntime", "current_platform"]

T = TypeVar("T")

_platform: ContextVar[Platform | None] = ContextVar("tenfold_jobs_platform", default=None)


def current_platform() -> Platform:
    """The started platform of the worker running the current ``async def`` task.

    In ``tenfold worker`` it is the worker process's platform; in the embedded
    worker (the memory broker) it is the app's own.
    """
    platform = _platform.get()
    if platform is None:
        raise ConfigurationError(
            "no task is running here: current_platform() is for async tasks run by a worker "
            "(`tenfold worker`, or the embedded one of the memory broker)"
        )
    return platform


class WorkerRuntime:
    """The per-process event loop of a worker, and the platform started on it."""

    def __init__(self, platform: Platform | None) -> None:
        self.platform = platform
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        self._started = False

    def __repr__(self) -> str:
        return f"<WorkerRuntime pid={self._pid} started={self._started}>"

    def database(self) -> Database:
        """The platform's database (the dead-letter queue's and exactly-once keys' home)."""
        if self.platform is None:
            raise ConfigurationError("no platform runs tasks in this process")
        return self.platform.db

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on this process's loop, the platform started."""
        loop = self._loop_here()
        if self.platform is not None and not self._started:
            loop.run_until_complete(self.platform.start())
            self._started = True
        token = _platform.set(self.platform)
        try:
            return loop.run_until_complete(coro)
        finally:
            _platform.reset(token)

    def close(self, **_: Any) -> None:
        """Stop the platform and close the loop, if this process made them."""
        if self._loop is None or self._pid != os.getpid():
            return
        try:
            if self._started and self.platform is not None:
                self._loop.run_until_complete(self.platform.stop())
        finally:
            self._started = False
            self._loop.close()
            self._loop = None

    def _loop_here(self) -> asyncio.AbstractEventLoop:
        # A loop made before a fork belongs to the parent: the child makes its own.
        if self._loop is None or self._pid != os.getpid():
            self._loop = asyncio.new_event_loop()
            self._pid = os.getpid()
            self._started = False
        return self._loop
