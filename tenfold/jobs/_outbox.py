"""Enqueue after commit: a transactional outbox, sent right after the commit, and a relay.

``enqueue(..., session=s)`` writes the message as a row of
``tenfold_job_outbox`` in ``s``'s transaction and sends nothing yet:

- the transaction rolls back: the row goes with it, the task never runs;
- it commits: an after-commit callback sends the session's messages at once
  (the fast path, no waiting for the relay) and deletes their rows;
- the process dies between the commit and the send (or the broker is down
  then): the rows stay, and the relay of any started platform sends them
  once they are ``TENFOLD_JOBS__OUTBOX_GRACE`` seconds old, claiming them with
  ``FOR UPDATE SKIP LOCKED`` so that several relays share the work.

Every send of a row uses the row's id as the message id. The relay can send
a row the fast path sent already (the process died between send and
delete); an exactly-once task's default key is the message id, so that
duplicate is acknowledged without running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tenfold.jobs._once import prune_keys
from tenfold.jobs._tables import outbox
from tenfold.observability import get_logger

if TYPE_CHECKING:
    from tenfold.db import Database, Router, TenfoldSession

__all__ = ["Outbox", "OutboxRelay"]

_log = get_logger("tenfold.jobs")

_PENDING = "tenfold_jobs_outbox"
#: Rows one relay claims per transaction.
_BATCH = 100
#: Seconds between two prunings of old exactly-once keys.
_PRUNE_EVERY = 600.0

#: Sends (message id, task name, message) items (``Jobs.send``).
Send = Callable[[list[tuple[str | None, str, dict[str, Any]]]], Awaitable[list[str]]]


class Outbox:
    """Writes outbox rows in a caller's transaction and sends them once it commits."""

    def __init__(self, send: Send, *, clock: Callable[[], float]) -> None:
        self._send = send
        self._clock = clock
        #: Ids of sent rows still to delete, per database; one task deletes them in batches.
        self._sent: dict[Router, list[str]] = {}
        self._deleter: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return "<Outbox>"

    async def add(
        self,
        session: TenfoldSession,
        message_id: str,
        task: str,
        message: dict[str, Any],
        *,
        send: bool = True,
    ) -> None:
        """Write the row in ``session``'s transaction; it is sent after the commit (with
        ``send=False``, by a relay once it is ``grace`` seconds old)."""
        await session.execute(
            sa.insert(outbox).values(
                id=message_id, task=task, message=message, created_at=self._clock()
            )
        )
        if not send:
            return
        pending: list[tuple[str | None, str, dict[str, Any]]] | None = (
            session.sync_session.info.get(_PENDING)
        )
        if pending is None:
            pending = session.sync_session.info[_PENDING] = []
            # The rows and the callback live and die with the transaction: a rollback drops
            # both (the session discards its after-commit callbacks).
            session.after_commit(lambda: self._after_commit(session, pending))
        pending.append((message_id, task, message))

    async def _after_commit(
        self, session: TenfoldSession, pending: list[tuple[str | None, str, dict[str, Any]]]
    ) -> None:
        session.sync_session.info.pop(_PENDING, None)
        # If the send fails, every row stays for the relay (some may have gone out: their
        # second send has the same message id).
        await self._send(pending)
        router = session.router
        if router is None:
            return
        # The caller does not wait for the rows' deletion: one background task deletes the
        # sent rows of every commit since its last pass, in one statement per database.
        self._sent.setdefault(router, []).extend(i for i, _, _ in pending if i is not None)
        if self._deleter is None or self._deleter.done():
            self._deleter = asyncio.create_task(self._delete_sent(), name="tenfold-outbox-delete")

    async def _delete_sent(self) -> None:
        while self._sent:
            batch, self._sent = self._sent, {}
            for router, ids in batch.items():
                try:
                    async with router.session() as session:
                        await session.execute(sa.delete(outbox).where(outbox.c.id.in_(ids)))
                except Exception as exc:
                    # Sent already: the relay may send them again, which exactly-once tasks
                    # skip.
                    _log.warning("outbox_delete_failed", count=len(ids), exc_info=exc)

    async def flush(self) -> None:
        """Wait until the rows of every send so far are deleted (``Jobs.stop`` calls it)."""
        while self._deleter is not None and not self._deleter.done():
            await self._deleter


class OutboxRelay:
    """Sends outbox rows their process left behind, from every database of ``db``."""

    def __init__(
        self,
        db: Database,
        send: Send,
        *,
        interval: float,
        grace: float,
        clock: Callable[[], float],
        key_retention: float | None = None,
    ) -> None:
        self.db = db
        self._send = send
        #: Exactly-once keys older than this are pruned, about every ``_PRUNE_EVERY`` s.
        self.key_retention = key_retention
        self._pruned_at = clock()
        self.interval = interval
        self.grace = grace
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<OutboxRelay interval={self.interval} grace={self.grace}>"

    async def drain(self) -> int:
        """One pass: send and delete every row older than the grace period; how many."""
        sent = 0
        for router in self.db.routers:
            while True:
                count = await self._batch(router)
                sent += count
                if count < _BATCH:
                    break
        return sent

    async def _batch(self, router: Any) -> int:
        due = self._clock() - self.grace
        query = (
            sa.select(outbox.c.id, outbox.c.task, outbox.c.message)
            .where(outbox.c.created_at <= due)
            .order_by(outbox.c.created_at)
            .limit(_BATCH)
            .with_for_update(skip_locked=True)
        )
        async with router.session() as session:
            rows = (await session.execute(query)).all()
            if not rows:
                return 0
            await self._send([(row.id, row.task, row.message) for row in rows])
            await session.execute(sa.delete(outbox).where(outbox.c.id.in_([r.id for r in rows])))
        _log.info("outbox_relayed", count=len(rows))
        return len(rows)

    async def _maybe_prune(self) -> None:
        now = self._clock()
        if self.key_retention is None or now - self._pruned_at < _PRUNE_EVERY:
            return
        self._pruned_at = now
        pruned = await prune_keys(self.db, before=now - self.key_retention)
        if pruned:
            _log.info("task_keys_pruned", count=pruned)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tenfold-outbox-relay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.drain()
                await self._maybe_prune()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The rows stay; the next pass tries again.
                _log.warning("outbox_relay_failed", exc_info=exc)
