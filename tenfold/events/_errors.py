"""The event store's errors.

TenfoldError
├── UnknownEventType        an aggregate has no handler for a stream's event type
└── ProblemError
    ├── NotFound
    │   └── AggregateNotFound   the stream to load has no events (404)
    └── Conflict
        └── ConcurrencyError    the stream was not at the expected version (409)
"""

from __future__ import annotations

from tenfold._errors import Conflict, NotFound, TenfoldError

__all__ = ["AggregateNotFound", "ConcurrencyError", "UnknownEventType"]


class ConcurrencyError(Conflict):
    """The stream was not at the expected version: someone appended first (a 409).

    ``expected`` is the version the append assumed and ``actual`` the
    stream's version when it was refused (``None`` when the append lost a
    race and the winner had not committed yet). Load the stream again and
    decide anew; on PostgreSQL the caller's transaction is aborted and must be
    rolled back first.
    """

    def __init__(
        self, stream_id: str, expected: int, actual: int | None, *, reason: str = ""
    ) -> None:
        detail = f"stream {stream_id!r} is not at version {expected}"
        if actual is not None:
            detail += f" (it is at {actual})"
        super().__init__(
            detail, stream_id=stream_id, expected_version=expected, actual_version=actual
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        if reason:
            self.context["reason"] = reason


class AggregateNotFound(NotFound):
    """The stream an aggregate was to be loaded from has no events (a 404)."""

    def __init__(self, aggregate: str, stream_id: str) -> None:
        super().__init__(f"{aggregate} {stream_id!r} not found", stream_id=stream_id)
        self.aggregate = aggregate
        self.stream_id = stream_id


class UnknownEventType(TenfoldError):
    """An aggregate met an event type it has no ``@on`` handler for.

    A programming error, not a client's: add the handler, or set
    ``ignore_unknown_events = True`` on the aggregate class.
    """

    def __init__(self, aggregate: str, stream_id: str, event_type: str) -> None:
        super().__init__(
            f"{aggregate} has no handler for event type {event_type!r} (stream {stream_id!r})",
            aggregate=aggregate,
            stream_id=stream_id,
            event_type=event_type,
        )
        self.aggregate = aggregate
        self.stream_id = stream_id
        self.event_type = event_type
