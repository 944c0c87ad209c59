"""How the event store's errors answer as problem+json (a ``tenfold.web.ProblemRegistry``
table, registered by the events extension)."""

from __future__ import annotations

from collections.abc import Mapping

from tenfold._errors import TenfoldError
from tenfold.events._errors import AggregateNotFound, ConcurrencyError, UnknownEventType
from tenfold.events._projection import ProjectionError
from tenfold.web import Problem, ProblemEntry

__all__ = ["PROBLEMS"]

_T = "https://tenfold.dev/problems/"
_INTERNAL = "Internal Server Error"

PROBLEMS: Mapping[type[TenfoldError], ProblemEntry] = {
    # Its own type, so a client can tell "reload and decide again" from other conflicts;
    # the body carries stream_id, expected_version and actual_version.
    ConcurrencyError: Problem(409, "Conflict", type=_T + "concurrency-conflict"),
    AggregateNotFound: Problem(404, "Not Found", type=_T + "not-found"),
    # Programming errors: the client hears a 500 with the generic detail, the log the rest.
    UnknownEventType: Problem(500, _INTERNAL, type=_T + "unknown-event-type", expose_detail=False),
    ProjectionError: Problem(500, _INTERNAL, type=_T + "projection-failed", expose_detail=False),
}
