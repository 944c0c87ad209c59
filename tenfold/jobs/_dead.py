"""The dead-letter queue: tasks that failed for good, kept in a database table.

A task lands here when it exhausts its retries or fails with an error its
``retry_on`` does not select. The row keeps what is needed to understand and
re-run it: name, arguments (size-capped), exception, traceback, attempts,
request id, the context it ran in, and when it failed. ``tenfold jobs dlq``
lists, shows, retries and purges rows.
"""

from __future__ import annotations

import traceback as tb
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from tenfold.jobs._tables import dead_letters

if TYPE_CHECKING:
    from tenfold.db import Database, TenfoldSession

__all__ = ["DeadLetter", "DeadLetterGauge", "DeadLetters"]

_MAX_EXCEPTION = 1000
_MAX_TRACEBACK = 64 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered task."""

    id: int
    message_id: str
    task: str
    queue: str | None
    #: ``{"args": [...], "kwargs": {...}}`` as JSON text, cut when ``args_truncated``.
    args: str
    args_truncated: bool
    exception: str
    traceback: str
    attempts: int
    request_id: str | None
    context: Mapping[str, Any] | None
    failed_at: float

    def to_dict(self, *, traceback: bool = True) -> dict[str, Any]:
        data = asdict(self)
        data["context"] = dict(self.context) if self.context is not None else None
        if not traceback:
            del data["traceback"]
        return data

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        """The positional and keyword arguments; ``ValueError`` when they were cut."""
        if self.args_truncated:
            raise ValueError(f"dead letter {self.id}: its arguments were cut when stored")
        data = orjson.loads(self.args)
        return list(data.get("args", [])), dict(data.get("kwargs", {}))


def describe(exc: BaseException) -> str:
    """``Type: message``, capped."""
    text = f"{type(exc).__qualname__}: {exc}"
    return text[:_MAX_EXCEPTION]


def format_traceback(exc: BaseException) -> str:
    text = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
    return text[-_MAX_TRACEBACK:]


def encode_args(args: Sequence[Any], kwargs: Mapping[str, Any], limit: int) -> tuple[str, bool]:
    """The arguments as JSON text of at most ``limit`` bytes, and whether they were cut."""
    raw = orjson.dumps({"args": list(args), "kwargs": dict(kwargs)}, default=repr)
    if len(raw) <= limit:
        return raw.decode(), False
    return raw[:limit].decode(errors="ignore"), True


class DeadLetters:
    """Rows of ``tenfold_job_dead_letters`` on one database's primary."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __repr__(self) -> str:
        return "<DeadLetters>"

    async def record(
        self,
        *,
        message_id: str,
        task: str,
        queue: str | None,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        exc: BaseException,
        attempts: int,
        context: Mapping[str, Any] | None,
        failed_at: float,
        max_args: int,
    ) -> int:
        """Store one failed task; its id."""
        text, truncated = encode_args(args, kwargs, max_args)
        request_id = context.get("request_id") if context else None
        async with self.db.session() as session:
            result = await session.execute(
                sa.insert(dead_letters)
                .values(
                    message_id=message_id,
                    task=task,
                    queue=queue,
                    args=text,
                    args_truncated=truncated,
                    exception=describe(exc),
                    traceback=format_traceback(exc),
                    attempts=attempts,
                    request_id=request_id if isinstance(request_id, str) else None,
                    context=dict(context) if context else None,
                    failed_at=failed_at,
                )
                .returning(dead_letters.c.id)
            )
            return int(result.scalar_one())

    async def list(
        self, *, task: str | None = None, limit: int = 100, after: int | None = None
    ) -> list[DeadLetter]:
        """Rows in id order, from after ``after``, at most ``limit``."""
        query = sa.select(dead_letters).order_by(dead_letters.c.id).limit(limit)
        if task is not None:
            query = query.where(dead_letters.c.task == task)
        if after is not None:
            query = query.where(dead_letters.c.id > after)
        async with self.db.session(readonly=True) as session:
            rows = (await session.execute(query)).mappings().all()
        return [DeadLetter(**row) for row in rows]

    async def get(self, letter_id: int) -> DeadLetter | None:
        async with self.db.session(readonly=True) as session:
            query = sa.select(dead_letters).where(dead_letters.c.id == letter_id)
            row = (await session.execute(query)).mappings().first()
        return DeadLetter(**row) if row is not None else None

    async def count(self, *, task: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(dead_letters)
        if task is not None:
            query = query.where(dead_letters.c.task == task)
        async with self.db.session(readonly=True) as session:
            return int(await session.scalar(query) or 0)

    async def delete(self, letter_id: int, *, session: TenfoldSession | None = None) -> bool:
        """Remove one row (in ``session``'s transaction, if given); whether it was there."""
        statement = sa.delete(dead_letters).where(dead_letters.c.id == letter_id)
        if session is not None:
            result = await session.execute(statement)
            return bool(getattr(result, "rowcount", 0))
        async with self.db.session() as own:
            result = await own.execute(statement)
            return bool(getattr(result, "rowcount", 0))

    async def purge(self, *, task: str | None = None, before: float | None = None) -> int:
        """Remove rows (of ``task``, failed before ``before``); how many."""
        statement = sa.delete(dead_letters)
        if task is not None:
            statement = statement.where(dead_letters.c.task == task)
        if before is not None:
            statement = statement.where(dead_letters.c.failed_at < before)
        async with self.db.session() as session:
            result = await session.execute(statement)
            return int(getattr(result, "rowcount", 0) or 0)


class DeadLetterGauge:
    """``<ns>_jobs_dead_letters``: rows in the dead-letter queue (a sampler of ``JobsSampler``)."""

    name = "dead_letters"

    def __init__(self, letters: DeadLetters, namespace: str = "tenfold") -> None:
        self.letters = letters
        self._name = f"{namespace}_jobs_dead_letters" if namespace else "jobs_dead_letters"

    async def __call__(self) -> list[Metric]:
        family = GaugeMetricFamily(
            self._name, "Tasks in the dead-letter queue (sampled by one process)."
        )
        family.add_metric([], await self.letters.count())
        return [family]
