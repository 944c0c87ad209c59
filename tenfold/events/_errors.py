"""The event store's errors."""

from __future__ import annotations

from tenfold._errors import Conflict

__all__ = ["ConcurrencyError"]


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
