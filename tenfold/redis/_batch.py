"""``ScriptBatcher``: Lua script calls made in one loop iteration go to Redis as one pipeline.

The first call of an iteration yields once; calls made meanwhile join it; a
lone call is sent as a plain ``EVALSHA``, two or more as one pipeline
(``transaction=False``) of at most ``MAX_BATCH``. Each script stays one atomic
call; see docs/ratelimit.md ("Coalescing") for latency, failures and
cancellation. A hub has one (``hub.scripts``), shared by whatever runs scripts
on it; each round trip takes one of the hub's in-flight slots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from tenfold.redis._clients import REDIS_ERRORS, unavailable

if TYPE_CHECKING:
    from tenfold.redis._hub import RedisHub

__all__ = ["MAX_BATCH", "ScriptBatcher"]

#: The most decisions one pipeline carries; callers past it start the next one.
MAX_BATCH = 128

# One script call waiting for its batch: (future, sha, script, keys, args).
_Call = tuple["asyncio.Future[Any]", str | bytes, str, Sequence[str], Sequence[Any]]


class ScriptBatcher:
    """Coalesces script calls on ``hub``'s client, within the hub's in-flight bound.

    Every Redis failure reaches each caller as its own ``RedisUnavailable``
    (the driver's error is ``__cause__``). ``round_trips`` counts commands and
    pipelines sent.
    """

    def __init__(self, hub: RedisHub) -> None:
        self._hub = hub
        self._client = hub.client
        self._open: list[_Call] | None = None  # the batch callers of this iteration join
        self._batches: set[asyncio.Task[None]] = set()
        self.round_trips = 0

    async def eval(
        self,
        names: Sequence[str],
        args: Sequence[Any],
        script: str,
        sha: str | bytes,
    ) -> Any:
        """Run ``script``, in one pipeline with the calls made in the same loop iteration."""
        future = asyncio.get_running_loop().create_future()
        call = (future, sha, script, names, args)
        batch = self._open
        if batch is not None and len(batch) < MAX_BATCH:
            batch.append(call)
            return await future
        # The first caller of an iteration leads: it yields once so that the others
        # join, then sends them all. Callers never wait longer than that one iteration.
        batch = self._open = [call]
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._seal(batch)
            del batch[0]
            if batch:
                self._dispatch(batch)
            raise
        self._seal(batch)
        if len(batch) == 1:
            return await self._eval_alone(names, args, script, sha)
        self._dispatch(batch)
        return await future

    def _seal(self, batch: list[_Call]) -> None:
        if self._open is batch:
            self._open = None

    def _dispatch(self, batch: list[_Call]) -> None:
        # A task of its own, so that no caller's cancellation stops the others' batch.
        task = asyncio.create_task(self._run(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _acquire(self) -> None:
        slots = self._hub.slots
        if not slots.take():
            await slots.wait("EVALSHA")

    async def _eval_alone(
        self, names: Sequence[str], args: Sequence[Any], script: str, sha: str | bytes
    ) -> Any:
        await self._acquire()
        try:
            if not self._hub.initialized:
                await self._hub.initialize()
            self.round_trips += 1
            try:
                return await self._client.evalsha(sha, len(names), *names, *args)  # type: ignore[no-untyped-call]
            except NoScriptError:  # a restarted (or new) node: EVAL runs it and caches it
                self.round_trips += 1
                return await self._client.eval(script, len(names), *names, *args)  # type: ignore[no-untyped-call]
        except REDIS_ERRORS as exc:
            raise unavailable("EVALSHA", exc) from exc
        finally:
            self._hub.slots.give()

    async def _run(self, batch: list[_Call]) -> None:
        """Send ``batch`` as one pipeline; hand each caller its reply or its error."""
        # A caller cancelled before the send spends nothing: its call is dropped.
        batch = [call for call in batch if not call[0].done()]
        if not batch:
            return
        try:
            replies: list[Any] = await self._send(batch)
        except REDIS_ERRORS as exc:
            replies = [exc] * len(batch)
        except asyncio.CancelledError:  # the loop is closing
            for future, *_ in batch:
                future.cancel()
            raise
        except Exception as exc:  # not a Redis failure: the callers see it as it is
            for future, *_ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (future, *_), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(reply, BaseException):
                future.set_exception(unavailable("EVALSHA", reply))
            else:
                future.set_result(reply)

    async def _send(self, batch: list[_Call]) -> list[Any]:
        await self._acquire()
        try:
            if not self._hub.initialized:
                await self._hub.initialize()
            replies = await self._pipeline(batch, "EVALSHA")
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:  # a restarted (or new) node: EVAL runs those and caches the script
                again = await self._pipeline([batch[i] for i in missing], "EVAL")
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
            return replies
        finally:
            self._hub.slots.give()

    async def _pipeline(self, batch: list[_Call], command: str) -> list[Any]:
        """One round trip; a failed call's reply is its exception."""
        self.round_trips += 1
        pipe = self._client.pipeline(transaction=False)
        by_sha = command == "EVALSHA"
        for _, sha, script, names, args in batch:
            pipe.execute_command(command, sha if by_sha else script, len(names), *names, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def drain(self) -> None:
        """Wait for the pipelines in flight."""
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)
