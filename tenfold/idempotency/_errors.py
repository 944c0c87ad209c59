"""The problems an idempotency key can cause, and how a client sees them (``PROBLEMS``).

ProblemError
├── IdempotencyKeyMissing     the route requires a key and none was sent   -> 400
├── IdempotencyScopeMissing   no user or API key to scope the key to      -> 401
├── IdempotencyKeyInFlight    the first request with this key still runs  -> 409
└── IdempotencyKeyMismatch    the key was used for a different request    -> 422
"""

from __future__ import annotations

from collections.abc import Mapping

from tenfold._errors import BadRequest, Conflict, ProblemError, TenfoldError
from tenfold.web import Problem, ProblemEntry

__all__ = [
    "PROBLEMS",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyMismatch",
    "IdempotencyKeyMissing",
    "IdempotencyScopeMissing",
]


class IdempotencyKeyMissing(BadRequest):
    """The route requires an idempotency key and the request sent none."""


class IdempotencyScopeMissing(ProblemError):
    """No user or API key to scope the idempotency key to."""


class IdempotencyKeyInFlight(Conflict):
    """The first request with this key is still being processed."""


class IdempotencyKeyMismatch(ProblemError):
    """The key was already used for a different request."""


def _retry_in_a_second(exc: BaseException) -> dict[str, str]:
    # The first request usually finishes within a second; then the stored response is replayed.
    return {"Retry-After": "1"}


_T = "https://tenfold.dev/problems/"

#: The idempotency errors as problem+json (``tenfold.web.ProblemRegistry`` table).
PROBLEMS: Mapping[type[TenfoldError], ProblemEntry] = {
    IdempotencyKeyMissing: Problem(
        400, "Idempotency Key Missing", type=_T + "idempotency-key-missing"
    ),
    IdempotencyScopeMissing: Problem(401, "Unauthorized", type=_T + "idempotency-scope-missing"),
    IdempotencyKeyInFlight: Problem(
        409,
        "Idempotency Key In Use",
        type=_T + "idempotency-key-in-flight",
        headers=_retry_in_a_second,
    ),
    IdempotencyKeyMismatch: Problem(
        422, "Idempotency Key Reused", type=_T + "idempotency-key-mismatch"
    ),
}
