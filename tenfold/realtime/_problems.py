"""How realtime's errors answer as problem+json (registered by the realtime extension).

Only the Python client raises its own errors: an app that calls another
service's realtime endpoint from a request and lets the error escape answers
502, without the other server's message.
"""

from __future__ import annotations

from collections.abc import Mapping

from tenfold._errors import TenfoldError
from tenfold.realtime._client import RealtimeClosed, RealtimeError
from tenfold.web import Problem, ProblemEntry

__all__ = ["PROBLEMS"]

_T = "https://tenfold.dev/problems/"

PROBLEMS: Mapping[type[TenfoldError], ProblemEntry] = {
    RealtimeError: Problem(502, "Bad Gateway", type=_T + "realtime-error", expose_detail=False),
    RealtimeClosed: Problem(502, "Bad Gateway", type=_T + "realtime-closed", expose_detail=False),
}
