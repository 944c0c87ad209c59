# ruff: noqa: E501
"""Every error tenfold defines answers with the status, title, type, headers and body it always had.

The tables pin what a client receives for each ``TenfoldError`` class, byte for
byte; a change here is a change on the wire. They were written down from the
exception classes before the mapping moved to ``tenfold.web.ProblemRegistry``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator

import httpx
import pytest

import tenfold
from tenfold import (
    BadRequest,
    ConfigurationError,
    Conflict,
    ContextSnapshot,
    DatabaseError,
    DatabaseUnavailable,
    DependencyUnavailable,
    Forbidden,
    IntegrityConflict,
    InvalidCursor,
    InvalidData,
    NotFound,
    ProblemError,
    QueryTimeout,
    ShuttingDown,
    TenfoldError,
    Unauthorized,
    auth,
    cache,
    events,
    idempotency,
    ratelimit,
    realtime,
    redis,
    resilience,
    restore,
)
from tenfold.auth import (
    CsrfFailed,
    InvalidApiKey,
    InvalidRefreshToken,
    InvalidToken,
    OAuthAccountNotFound,
    OAuthAccountRevoked,
    OAuthCodeRejected,
    OAuthProviderUnavailable,
    OAuthStateError,
    RefreshTokenReused,
)
from tenfold.cache import CacheSerializationError, CacheUnavailable
from tenfold.events import (
    AggregateNotFound,
    ConcurrencyError,
    ProjectionError,
    RecordedEvent,
    UnknownEventType,
)
from tenfold.events import Position as EventPosition
from tenfold.idempotency import (
    IdempotencyKeyInFlight,
    IdempotencyKeyMismatch,
    IdempotencyKeyMissing,
    IdempotencyScopeMissing,
)
from tenfold.ratelimit import RateLimited, RateLimiterUnavailable
from tenfold.realtime import RealtimeClosed, RealtimeError
from tenfold.redis import RedisUnavailable
from tenfold.resilience import (
    BulkheadFull,
    CircuitOpen,
    DeadlineExceeded,
    NoProviderAvailable,
    QuotaExhausted,
    RetriesExhausted,
    SharedQuotaUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from tenfold.web import GENERIC_DETAIL, Problem, ProblemRegistry, problem_for_exception

_DEPENDENCY = "A service this request needs is unavailable. Retry shortly."
_T = "https://tenfold.dev/problems/"
_UNAVAILABLE = "Service Unavailable"
_INTERNAL = "Internal Server Error"

#: class -> (status, title, type, whether the message is shown as ``detail``)
CLASSES: dict[type[TenfoldError], tuple[int, str, str, bool]] = {
    TenfoldError: (500, _INTERNAL, _T + "internal", False),
    ConfigurationError: (500, _INTERNAL, _T + "configuration", False),
    DependencyUnavailable: (503, _UNAVAILABLE, _T + "dependency-unavailable", _DEPENDENCY),
    DatabaseUnavailable: (
        503,
        _UNAVAILABLE,
        _T + "database-unavailable",
        "The database is unavailable. Retry shortly.",
    ),
    DatabaseError: (500, _INTERNAL, _T + "database-error", False),
    IntegrityConflict: (409, "Conflict", _T + "integrity-conflict", True),
    InvalidData: (422, "Unprocessable Content", _T + "invalid-data", True),
    QueryTimeout: (503, _UNAVAILABLE, _T + "query-timeout", True),
    ShuttingDown: (503, _UNAVAILABLE, _T + "shutting-down", True),
    ProblemError: (500, _INTERNAL, _T + "internal", True),
    BadRequest: (400, "Bad Request", _T + "bad-request", True),
    InvalidCursor: (400, "Invalid Cursor", _T + "invalid-cursor", True),
    Unauthorized: (401, "Unauthorized", _T + "unauthorized", True),
    InvalidToken: (401, "Unauthorized", _T + "invalid-token", True),
    InvalidApiKey: (401, "Unauthorized", _T + "invalid-api-key", True),
    InvalidRefreshToken: (401, "Unauthorized", _T + "invalid-refresh-token", True),
    RefreshTokenReused: (401, "Unauthorized", _T + "invalid-refresh-token", True),
    CsrfFailed: (403, "Forbidden", _T + "csrf-failed", True),
    OAuthStateError: (400, "Bad Request", _T + "oauth-state", True),
    OAuthCodeRejected: (400, "Bad Request", _T + "oauth-code-rejected", True),
    OAuthAccountNotFound: (404, "Not Found", _T + "not-found", True),
    OAuthAccountRevoked: (409, "Conflict", _T + "oauth-account-revoked", True),
    OAuthProviderUnavailable: (
        503,
        _UNAVAILABLE,
        _T + "oauth-provider-unavailable",
        "The account's provider is unavailable. Retry shortly.",
    ),
    Forbidden: (403, "Forbidden", _T + "forbidden", True),
    NotFound: (404, "Not Found", _T + "not-found", True),
    Conflict: (409, "Conflict", _T + "conflict", True),
    CacheUnavailable: (
        503,
        _UNAVAILABLE,
        _T + "cache-unavailable",
        "The cache is unavailable. Retry shortly.",
    ),
    CacheSerializationError: (500, _INTERNAL, _T + "cache-serialization", False),
    RateLimited: (429, "Too Many Requests", _T + "rate-limited", True),
    RateLimiterUnavailable: (
        503,
        _UNAVAILABLE,
        _T + "rate-limiter-unavailable",
        "The rate limiter is unavailable. Retry shortly.",
    ),
    IdempotencyKeyMissing: (400, "Idempotency Key Missing", _T + "idempotency-key-missing", True),
    IdempotencyScopeMissing: (401, "Unauthorized", _T + "idempotency-scope-missing", True),
    IdempotencyKeyInFlight: (409, "Idempotency Key In Use", _T + "idempotency-key-in-flight", True),
    IdempotencyKeyMismatch: (422, "Idempotency Key Reused", _T + "idempotency-key-mismatch", True),
    CircuitOpen: (503, _UNAVAILABLE, _T + "circuit-open", True),
    BulkheadFull: (503, _UNAVAILABLE, _T + "bulkhead-full", True),
    DeadlineExceeded: (503, _UNAVAILABLE, _T + "deadline-exceeded", True),
    RetriesExhausted: (503, _UNAVAILABLE, _T + "retries-exhausted", True),
    NoProviderAvailable: (503, _UNAVAILABLE, _T + "no-provider-available", True),
    QuotaExhausted: (503, _UNAVAILABLE, _T + "upstream-quota-exhausted", True),
    SharedQuotaUnavailable: (503, _UNAVAILABLE, _T + "upstream-quota-unavailable", True),
    UpstreamUnreachable: (503, _UNAVAILABLE, _T + "upstream-unreachable", True),
    UpstreamTimeout: (503, _UNAVAILABLE, _T + "upstream-timeout", True),
    UpstreamError: (503, _UNAVAILABLE, _T + "upstream-error", True),
    RedisUnavailable: (503, _UNAVAILABLE, _T + "redis-unavailable", _DEPENDENCY),
    ConcurrencyError: (409, "Conflict", _T + "concurrency-conflict", True),
    AggregateNotFound: (404, "Not Found", _T + "not-found", True),
    UnknownEventType: (500, _INTERNAL, _T + "unknown-event-type", False),
    ProjectionError: (500, _INTERNAL, _T + "projection-failed", False),
    RealtimeError: (502, "Bad Gateway", _T + "realtime-error", False),
    RealtimeClosed: (502, "Bad Gateway", _T + "realtime-closed", False),
}

_REQUEST = httpx.Request("GET", "http://upstream.test/v1")


def _upstream_response(status: int) -> httpx.Response:
    return httpx.Response(status, request=_REQUEST)


_EVENT = RecordedEvent(
    id="0b9a2f5e-0000-4000-8000-000000000001",
    stream_id="match-7",
    version=4,
    position=EventPosition(812, 90),
    type="MatchCompleted",
    schema_version=1,
    data={"home_goals": 2},
    metadata={},
    recorded_at=0.0,
)

#: name -> an instance, as tenfold or an app raises it
SAMPLES: dict[str, Callable[[], Exception]] = {
    "root": lambda: TenfoldError("password=hunter2"),
    "root-empty": lambda: TenfoldError(),
    "configuration": lambda: ConfigurationError("bad url", setting="TENFOLD_DB__URL"),
    "dependency": lambda: DependencyUnavailable(dependency="redis"),
    "dependency-hint": lambda: DependencyUnavailable(dependency="redis", retry_after=2.5),
    "dependency-hint-up": lambda: DependencyUnavailable("down", retry_after=0.2),
    "database-unavailable": lambda: DatabaseUnavailable(role="replica"),
    "database-error": lambda: DatabaseError("relation users_secret does not exist"),
    "integrity": lambda: IntegrityConflict("the change conflicts with existing data"),
    "invalid-data": lambda: InvalidData("a value does not fit its column"),
    "query-timeout": lambda: QueryTimeout("the statement timed out on the primary database"),
    "shutting-down": lambda: ShuttingDown("the instance is shutting down"),
    "problem": lambda: ProblemError("no coffee", brew="no"),
    "bad-request": lambda: BadRequest("unknown filter 'x'", field="x"),
    "bad-request-empty": lambda: BadRequest(),
    "invalid-cursor": lambda: InvalidCursor("the cursor is not valid"),
    "unauthorized": lambda: Unauthorized("sign in first"),
    "unauthorized-invalid-token": lambda: Unauthorized(
        "the access token is not valid", challenge='Bearer error="invalid_token"'
    ),
    "invalid-token": lambda: InvalidToken("expired (exp)"),
    "invalid-api-key": lambda: InvalidApiKey(reason="unknown"),
    "invalid-refresh-token": lambda: InvalidRefreshToken(),
    "refresh-token-reused": lambda: RefreshTokenReused(family_id="f-1", user_id="u-1"),
    "csrf-failed": lambda: CsrfFailed("the CSRF token is missing"),
    "oauth-state": lambda: OAuthStateError("the sign-in link has expired; start again"),
    "oauth-code-rejected": lambda: OAuthCodeRejected("the provider refused the code"),
    "oauth-account-not-found": lambda: OAuthAccountNotFound("no strava account connected"),
    "oauth-account-revoked": lambda: OAuthAccountRevoked("connect your strava account again"),
    "oauth-provider-unavailable": lambda: OAuthProviderUnavailable("strava", reason="timeout"),
    "forbidden": lambda: Forbidden("needs matches:write"),
    "not-found": lambda: NotFound("no widget 42", widget=42),
    "not-found-empty": lambda: NotFound(),
    "conflict": lambda: Conflict("taken", name="ann"),
    "cache-unavailable": lambda: CacheUnavailable(),
    "cache-serialization": lambda: CacheSerializationError("corrupt cache entry"),
    "rate-limited": lambda: RateLimited(retry_after=1.2, limit=100, remaining=0, reset=1.2),
    "rate-limited-detail": lambda: RateLimited("slow down", retry_after=0.01, limit=5),
    "rate-limiter-unavailable": lambda: RateLimiterUnavailable(),
    "idempotency-missing": lambda: IdempotencyKeyMissing("POST /orders needs Idempotency-Key"),
    "idempotency-scope": lambda: IdempotencyScopeMissing("no user to scope the key to"),
    "idempotency-in-flight": lambda: IdempotencyKeyInFlight("still being processed"),
    "idempotency-mismatch": lambda: IdempotencyKeyMismatch("used for a different request"),
    "circuit-open": lambda: CircuitOpen("llm", state="open", retry_after=29.6),
    "circuit-half-open": lambda: CircuitOpen("llm", state="half_open", retry_after=0.0),
    "bulkhead-full": lambda: BulkheadFull("llm", max_concurrent=2, max_waiting=0),
    "deadline": lambda: DeadlineExceeded("llm", seconds=0.5),
    "retries-exhausted": lambda: RetriesExhausted("llm", attempts=3, reason="attempts"),
    "no-provider": lambda: NoProviderAvailable("llm", errors={}),
    "quota": lambda: QuotaExhausted("strava", window="15m", retry_after=120.4),
    "shared-quota": lambda: SharedQuotaUnavailable("strava", retry_after=1.0),
    "unreachable": lambda: UpstreamUnreachable("strava", request=_REQUEST),
    "upstream-timeout": lambda: UpstreamTimeout("strava", request=_REQUEST),
    # An UpstreamError answers with the provider's status: a 429 stays a 429.
    "upstream-503": lambda: UpstreamError(
        "strava", response=_upstream_response(503), retry_after=None
    ),
    "upstream-500": lambda: UpstreamError(
        "strava", response=_upstream_response(500), retry_after=None
    ),
    "upstream-502-hint": lambda: UpstreamError(
        "strava", response=_upstream_response(502), retry_after=59.5
    ),
    "redis": lambda: RedisUnavailable("redis EVALSHA failed (ConnectionError)"),
    "upstream-429-hint": lambda: UpstreamError(
        "strava", response=_upstream_response(429), retry_after=3.0
    ),
    "concurrency": lambda: ConcurrencyError("match-7", 3, 4, reason="version"),
    "concurrency-raced": lambda: ConcurrencyError("match-7", 3, None, reason="raced"),
    "aggregate-not-found": lambda: AggregateNotFound("Match", "match-7"),
    "unknown-event-type": lambda: UnknownEventType("Match", "match-7", "Secret"),
    "projection-failed": lambda: ProjectionError("leaderboard", _EVENT),
    "realtime-error": lambda: RealtimeError(403, "not allowed to subscribe to admin:1"),
    "realtime-closed": lambda: RealtimeClosed(4001, "slow consumer"),
}

#: name -> (status, raw headers, body): what a client receives, byte for byte
EXPECTED: dict[str, tuple[int, list[tuple[bytes, bytes]], bytes]] = {
    "root": (
        500,
        [(b"content-length", b"207"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/internal","title":"Internal Server Error","status":500,"detail":"The server could not complete the request. Quote the request_id if you report it.","request_id":"req-1"}',
    ),
    "root-empty": (
        500,
        [(b"content-length", b"207"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/internal","title":"Internal Server Error","status":500,"detail":"The server could not complete the request. Quote the request_id if you report it.","request_id":"req-1"}',
    ),
    "configuration": (
        500,
        [(b"content-length", b"212"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/configuration","title":"Internal Server Error","status":500,"detail":"The server could not complete the request. Quote the request_id if you report it.","request_id":"req-1"}',
    ),
    "dependency": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"197"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/dependency-unavailable","title":"Service Unavailable","status":503,"detail":"A service this request needs is unavailable. Retry shortly.","request_id":"req-1"}',
    ),
    "dependency-hint": (
        503,
        [
            (b"retry-after", b"2"),
            (b"content-length", b"197"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/dependency-unavailable","title":"Service Unavailable","status":503,"detail":"A service this request needs is unavailable. Retry shortly.","request_id":"req-1"}',
    ),
    "dependency-hint-up": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"197"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/dependency-unavailable","title":"Service Unavailable","status":503,"detail":"A service this request needs is unavailable. Retry shortly.","request_id":"req-1"}',
    ),
    "database-unavailable": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"179"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/database-unavailable","title":"Service Unavailable","status":503,"detail":"The database is unavailable. Retry shortly.","request_id":"req-1"}',
    ),
    "database-error": (
        500,
        [(b"content-length", b"213"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/database-error","title":"Internal Server Error","status":500,"detail":"The server could not complete the request. Quote the request_id if you report it.","request_id":"req-1"}',
    ),
    "integrity": (
        409,
        [(b"content-length", b"162"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/integrity-conflict","title":"Conflict","status":409,"detail":"the change conflicts with existing data","request_id":"req-1"}',
    ),
    "invalid-data": (
        422,
        [(b"content-length", b"161"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/invalid-data","title":"Unprocessable Content","status":422,"detail":"a value does not fit its column","request_id":"req-1"}',
    ),
    "query-timeout": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"176"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/query-timeout","title":"Service Unavailable","status":503,"detail":"the statement timed out on the primary database","request_id":"req-1"}',
    ),
    "shutting-down": (
        503,
        [
            (b"retry-after", b"1"),
            (b"connection", b"close"),
            (b"content-length", b"158"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/shutting-down","title":"Service Unavailable","status":503,"detail":"the instance is shutting down","request_id":"req-1"}',
    ),
    "problem": (
        500,
        [(b"content-length", b"147"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/internal","title":"Internal Server Error","status":500,"detail":"no coffee","request_id":"req-1","brew":"no"}',
    ),
    "bad-request": (
        400,
        [(b"content-length", b"149"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/bad-request","title":"Bad Request","status":400,"detail":"unknown filter \'x\'","request_id":"req-1","field":"x"}',
    ),
    "bad-request-empty": (
        400,
        [(b"content-length", b"130"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/bad-request","title":"Bad Request","status":400,"detail":"Bad Request","request_id":"req-1"}',
    ),
    "invalid-cursor": (
        400,
        [(b"content-length", b"148"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/invalid-cursor","title":"Invalid Cursor","status":400,"detail":"the cursor is not valid","request_id":"req-1"}',
    ),
    "unauthorized": (
        401,
        [
            (b"www-authenticate", b"Bearer"),
            (b"content-length", b"134"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/unauthorized","title":"Unauthorized","status":401,"detail":"sign in first","request_id":"req-1"}',
    ),
    "unauthorized-invalid-token": (
        401,
        [
            (b"www-authenticate", b'Bearer error="invalid_token"'),
            (b"content-length", b"150"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/unauthorized","title":"Unauthorized","status":401,"detail":"the access token is not valid","request_id":"req-1"}',
    ),
    "invalid-token": (
        401,
        [
            (b"www-authenticate", b'Bearer error="invalid_token"'),
            (b"content-length", b"151"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/invalid-token","title":"Unauthorized","status":401,"detail":"the access token is not valid","request_id":"req-1"}',
    ),
    "forbidden": (
        403,
        [(b"content-length", b"134"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/forbidden","title":"Forbidden","status":403,"detail":"needs matches:write","request_id":"req-1"}',
    ),
    "invalid-api-key": (
        401,
        [
            (b"www-authenticate", b'ApiKey error="invalid_key"'),
            (b"content-length", b"139"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/invalid-api-key","title":"Unauthorized","status":401,"detail":"invalid API key","request_id":"req-1"}',
    ),
    "invalid-refresh-token": (
        401,
        [
            (b"www-authenticate", b'Bearer error="invalid_token"'),
            (b"content-length", b"175"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/invalid-refresh-token","title":"Unauthorized","status":401,"detail":"The refresh token is not valid. Log in again.","request_id":"req-1"}',
    ),
    "refresh-token-reused": (
        401,
        [
            (b"www-authenticate", b'Bearer error="invalid_token"'),
            (b"content-length", b"175"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/invalid-refresh-token","title":"Unauthorized","status":401,"detail":"The refresh token is not valid. Log in again.","request_id":"req-1"}',
    ),
    "csrf-failed": (
        403,
        [(b"content-length", b"142"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/csrf-failed","title":"Forbidden","status":403,"detail":"the CSRF token is missing","request_id":"req-1"}',
    ),
    "oauth-state": (
        400,
        [(b"content-length", b"160"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/oauth-state","title":"Bad Request","status":400,"detail":"the sign-in link has expired; start again","request_id":"req-1"}',
    ),
    "oauth-code-rejected": (
        400,
        [(b"content-length", b"156"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/oauth-code-rejected","title":"Bad Request","status":400,"detail":"the provider refused the code","request_id":"req-1"}',
    ),
    "oauth-account-not-found": (
        404,
        [(b"content-length", b"142"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/not-found","title":"Not Found","status":404,"detail":"no strava account connected","request_id":"req-1"}',
    ),
    "oauth-account-revoked": (
        409,
        [(b"content-length", b"159"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/oauth-account-revoked","title":"Conflict","status":409,"detail":"connect your strava account again","request_id":"req-1"}',
    ),
    "oauth-provider-unavailable": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"195"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/oauth-provider-unavailable","title":"Service Unavailable","status":503,"detail":"The account\'s provider is unavailable. Retry shortly.","request_id":"req-1"}',
    ),
    "not-found": (
        404,
        [(b"content-length", b"139"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/not-found","title":"Not Found","status":404,"detail":"no widget 42","request_id":"req-1","widget":42}',
    ),
    "not-found-empty": (
        404,
        [(b"content-length", b"124"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/not-found","title":"Not Found","status":404,"detail":"Not Found","request_id":"req-1"}',
    ),
    "conflict": (
        409,
        [(b"content-length", b"131"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/conflict","title":"Conflict","status":409,"detail":"taken","request_id":"req-1","name":"ann"}',
    ),
    "cache-unavailable": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"173"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/cache-unavailable","title":"Service Unavailable","status":503,"detail":"The cache is unavailable. Retry shortly.","request_id":"req-1"}',
    ),
    "cache-serialization": (
        500,
        [(b"content-length", b"218"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/cache-serialization","title":"Internal Server Error","status":500,"detail":"The server could not complete the request. Quote the request_id if you report it.","request_id":"req-1"}',
    ),
    "rate-limited": (
        429,
        [
            (b"retry-after", b"2"),
            (b"content-length", b"173"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/rate-limited","title":"Too Many Requests","status":429,"detail":"rate limit exceeded","request_id":"req-1","retry_after":2,"limit":100}',
    ),
    "rate-limited-detail": (
        429,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"161"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/rate-limited","title":"Too Many Requests","status":429,"detail":"slow down","request_id":"req-1","retry_after":1,"limit":5}',
    ),
    "rate-limiter-unavailable": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"187"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/rate-limiter-unavailable","title":"Service Unavailable","status":503,"detail":"The rate limiter is unavailable. Retry shortly.","request_id":"req-1"}',
    ),
    "idempotency-missing": (
        400,
        [(b"content-length", b"177"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/idempotency-key-missing","title":"Idempotency Key Missing","status":400,"detail":"POST /orders needs Idempotency-Key","request_id":"req-1"}',
    ),
    "idempotency-scope": (
        401,
        [(b"content-length", b"161"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/idempotency-scope-missing","title":"Unauthorized","status":401,"detail":"no user to scope the key to","request_id":"req-1"}',
    ),
    "idempotency-in-flight": (
        409,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"165"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/idempotency-key-in-flight","title":"Idempotency Key In Use","status":409,"detail":"still being processed","request_id":"req-1"}',
    ),
    "idempotency-mismatch": (
        422,
        [(b"content-length", b"171"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/idempotency-key-mismatch","title":"Idempotency Key Reused","status":422,"detail":"used for a different request","request_id":"req-1"}',
    ),
    "circuit-open": (
        503,
        [
            (b"retry-after", b"30"),
            (b"content-length", b"149"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/circuit-open","title":"Service Unavailable","status":503,"detail":"circuit \'llm\' is open","request_id":"req-1"}',
    ),
    "circuit-half-open": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"154"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/circuit-open","title":"Service Unavailable","status":503,"detail":"circuit \'llm\' is half_open","request_id":"req-1"}',
    ),
    "bulkhead-full": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"151"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/bulkhead-full","title":"Service Unavailable","status":503,"detail":"bulkhead \'llm\' is full","request_id":"req-1"}',
    ),
    "deadline": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"160"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/deadline-exceeded","title":"Service Unavailable","status":503,"detail":"\'llm\' took longer than 0.5s","request_id":"req-1"}',
    ),
    "retries-exhausted": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"175"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/retries-exhausted","title":"Service Unavailable","status":503,"detail":"\'llm\' failed after 3 attempt(s) (attempts)","request_id":"req-1"}',
    ),
    "no-provider": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"170"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/no-provider-available","title":"Service Unavailable","status":503,"detail":"no provider of \'llm\' is available","request_id":"req-1"}',
    ),
    "quota": (
        503,
        [
            (b"retry-after", b"120"),
            (b"content-length", b"171"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/upstream-quota-exhausted","title":"Service Unavailable","status":503,"detail":"\'strava\' quota \'15m\' is used up","request_id":"req-1"}',
    ),
    "shared-quota": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"200"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/upstream-quota-unavailable","title":"Service Unavailable","status":503,"detail":"\'strava\' quota cannot be checked: its Redis is unavailable","request_id":"req-1"}',
    ),
    "unreachable": (
        503,
        [(b"content-length", b"159"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/upstream-unreachable","title":"Service Unavailable","status":503,"detail":"\'strava\' is unreachable","request_id":"req-1"}',
    ),
    "upstream-timeout": (
        503,
        [(b"content-length", b"150"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/upstream-timeout","title":"Service Unavailable","status":503,"detail":"\'strava\' timed out","request_id":"req-1"}',
    ),
    "upstream-503": (
        503,
        [(b"content-length", b"151"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/upstream-error","title":"Service Unavailable","status":503,"detail":"\'strava\' answered 503","request_id":"req-1"}',
    ),
    "redis": (
        503,
        [
            (b"retry-after", b"1"),
            (b"content-length", b"192"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/redis-unavailable","title":"Service Unavailable","status":503,"detail":"A service this request needs is unavailable. Retry shortly.","request_id":"req-1"}',
    ),
    # A failing provider is a 503 from us, whatever it answered (its Retry-After kept).
    "upstream-500": (
        503,
        [(b"content-length", b"151"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/upstream-error","title":"Service Unavailable","status":503,"detail":"\'strava\' answered 500","request_id":"req-1"}',
    ),
    "upstream-502-hint": (
        503,
        [
            (b"retry-after", b"60"),
            (b"content-length", b"151"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/upstream-error","title":"Service Unavailable","status":503,"detail":"\'strava\' answered 502","request_id":"req-1"}',
    ),
    "upstream-429-hint": (
        503,
        [
            (b"retry-after", b"3"),
            (b"content-length", b"151"),
            (b"content-type", b"application/problem+json"),
        ],
        b'{"type":"https://tenfold.dev/problems/upstream-error","title":"Service Unavailable","status":503,"detail":"\'strava\' answered 429","request_id":"req-1"}',
    ),
    "concurrency": (
        409,
        [(b"content-length", b"236"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/concurrency-conflict","title":"Conflict","status":409,"detail":"stream \'match-7\' is not at version 3 (it is at 4)","request_id":"req-1","stream_id":"match-7","expected_version":3,"actual_version":4}',
    ),
    "concurrency-raced": (
        409,
        [(b"content-length", b"226"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/concurrency-conflict","title":"Conflict","status":409,"detail":"stream \'match-7\' is not at version 3","request_id":"req-1","stream_id":"match-7","expected_version":3,"actual_version":null}',
    ),
    "aggregate-not-found": (
        404,
        [(b"content-length", b"162"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/not-found","title":"Not Found","status":404,"detail":"Match \'match-7\' not found","request_id":"req-1","stream_id":"match-7"}',
    ),
    "unknown-event-type": (
        500,
        [(b"content-length", b"217"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/unknown-event-type","title":"Internal Server Error","status":500,"detail":"The server could not complete the request. Quote the request_id if you report it.","request_id":"req-1"}',
    ),
    "projection-failed": (
        500,
        [(b"content-length", b"216"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/projection-failed","title":"Internal Server Error","status":500,"detail":"The server could not complete the request. Quote the request_id if you report it.","request_id":"req-1"}',
    ),
    "realtime-error": (
        502,
        [(b"content-length", b"203"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/realtime-error","title":"Bad Gateway","status":502,"detail":"The server could not complete the request. Quote the request_id if you report it.","request_id":"req-1"}',
    ),
    "realtime-closed": (
        502,
        [(b"content-length", b"204"), (b"content-type", b"application/problem+json")],
        b'{"type":"https://tenfold.dev/problems/realtime-closed","title":"Bad Gateway","status":502,"detail":"The server could not complete the request. Quote the request_id if you report it.","request_id":"req-1"}',
    ),
}


def _tenfold_modules() -> Iterator[str]:
    yield "tenfold"
    for info in pkgutil.walk_packages(tenfold.__path__, "tenfold."):
        if not info.name.startswith(("tenfold.testing", "tenfold.__main__")):
            yield info.name


def _subclasses(cls: type[TenfoldError]) -> Iterator[type[TenfoldError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def tenfold_error_classes() -> set[type[TenfoldError]]:
    """Every TenfoldError subclass defined in tenfold's own modules, the root included."""
    for name in _tenfold_modules():
        importlib.import_module(name)
    return {TenfoldError} | {
        c for c in _subclasses(TenfoldError) if c.__module__.startswith("tenfold.")
    }


#: What ``create_app`` assembles: the core table and every capability's.
PROBLEMS = ProblemRegistry(
    redis.PROBLEMS,
    cache.PROBLEMS,
    idempotency.PROBLEMS,
    ratelimit.PROBLEMS,
    resilience.PROBLEMS,
    events.PROBLEMS,
    realtime.PROBLEMS,
    auth.PROBLEMS,
)


def render(exc: Exception) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    with restore(ContextSnapshot(request_id="req-1")):
        response = problem_for_exception(exc, PROBLEMS)
    return response.status_code, list(response.raw_headers), bytes(response.body)


def test_every_error_class_is_in_the_table() -> None:
    """The table lists exactly the TenfoldError classes tenfold defines, so none goes unmapped."""
    assert {c.__qualname__ for c in tenfold_error_classes()} == {c.__qualname__ for c in CLASSES}


def test_every_error_class_has_a_sample() -> None:
    """Each class in the table is rendered at least once below."""
    sampled = {type(make()) for make in SAMPLES.values()}
    assert set(CLASSES) - sampled == set()


@pytest.mark.parametrize("cls", list(CLASSES), ids=lambda c: c.__name__)
def test_class_has_its_own_registration(cls: type[TenfoldError]) -> None:
    """Each class is registered itself, with the status, title, type and exposure it had."""
    status, title, type_, exposed = CLASSES[cls]
    entry = PROBLEMS.entry(cls)
    sample = next(make() for make in SAMPLES.values() if type(make()) is cls)
    problem = entry if isinstance(entry, Problem) else PROBLEMS.lookup(sample)
    assert cls in PROBLEMS
    assert problem is not None
    shown = problem.detail if problem.detail is not None else problem.shows_detail
    assert (problem.title, problem.type, shown) == (title, type_, exposed)
    if isinstance(entry, Problem):
        assert problem.status == status


@pytest.mark.parametrize("cls", list(CLASSES), ids=lambda c: c.__name__)
def test_error_classes_carry_no_http_concerns(cls: type[TenfoldError]) -> None:
    """No exception class defines an HTTP status, title, slug, headers or problem members."""
    http = {"status_code", "title", "slug", "expose_detail", "type_uri"}
    http |= {"response_headers", "problem_extensions"}
    assert [name for name in http if hasattr(cls, name)] == []


@pytest.mark.parametrize("cls", list(CLASSES), ids=lambda c: c.__name__)
def test_class_maps_to_its_problem(cls: type[TenfoldError]) -> None:
    """Each class answers with the status, title and type it always had."""
    status, title, type_, _ = CLASSES[cls]
    sample = next(make() for make in SAMPLES.values() if type(make()) is cls)
    rendered_status, _, body = render(sample)
    assert rendered_status == status
    assert f'"type":"{type_}","title":"{title}","status":{status}'.encode() in body


@pytest.mark.parametrize("name", list(SAMPLES))
def test_response_is_unchanged_byte_for_byte(name: str) -> None:
    """Status, headers and body of each sample are exactly what clients have always received."""
    assert render(SAMPLES[name]()) == EXPECTED[name]


@pytest.mark.parametrize("name", list(SAMPLES))
def test_detail_is_shown_only_when_exposable(name: str, log_lines) -> None:
    """Internal errors show the generic detail and log their stack with the request id;
    unavailable dependencies show a fixed detail and log their message."""
    exc = SAMPLES[name]()
    exposed = CLASSES[type(exc)][3]
    status, _, body = render(exc)
    events = [line for line in log_lines() if line["logger"] == "tenfold.web"]
    if isinstance(exposed, str):
        assert f'"detail":"{exposed}"'.encode() in body
        (logged,) = events
        assert (logged["event"], logged["error"]) == ("service_unavailable", exc.message)
    elif not exposed:
        assert f'"detail":"{GENERIC_DETAIL}"'.encode() in body
        (logged,) = events
        assert (logged["event"], logged["request_id"]) == ("internal_error", "req-1")
        assert str(exc) in logged["exception"]
    elif status >= 500:
        assert [e["event"] for e in events] == ["service_unavailable"]
    else:
        assert events == []
