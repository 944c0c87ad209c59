"""The problems an idempotency key can cause, as problem+json errors.

ProblemError
├── IdempotencyKeyMissing     the route requires a key and none was sent   -> 400
├── IdempotencyScopeMissing   no user or API key to scope the key to      -> 401
├── IdempotencyKeyInFlight    the first request with this key still runs  -> 409
└── IdempotencyKeyMismatch    the key was used for a different request    -> 422
"""

from __future__ import annotations

from tenfold._errors import BadRequest, Conflict, ProblemError

__all__ = [
    "IdempotencyKeyInFlight",
    "IdempotencyKeyMismatch",
    "IdempotencyKeyMissing",
    "IdempotencyScopeMissing",
]


class IdempotencyKeyMissing(BadRequest):
    title = "Idempotency Key Missing"
    slug = "idempotency-key-missing"


class IdempotencyScopeMissing(ProblemError):
    status_code = 401
    title = "Unauthorized"
    slug = "idempotency-scope-missing"


class IdempotencyKeyInFlight(Conflict):
    title = "Idempotency Key In Use"
    slug = "idempotency-key-in-flight"

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class IdempotencyKeyMismatch(ProblemError):
    status_code = 422
    title = "Idempotency Key Reused"
    slug = "idempotency-key-mismatch"
