"""Which problem each exception becomes: ``Problem`` and ``ProblemRegistry``.

In the spirit of Starlette's ``exception_handlers``, a registry maps exception
classes to problems, and an exception is looked up along its class's MRO, so
the closest registered class wins: a ``CircuitOpen`` finds its own entry, an
app's ``class OutOfStock(Conflict)`` without one finds ``Conflict``'s.

Exceptions carry no HTTP concerns; the tables that say how tenfold's own are
answered sit beside them, one per package (``tenfold.ratelimit.PROBLEMS``...),
and the core tree's here (``CORE_PROBLEMS``). Every registry starts from the
core table; later tables and ``register()`` override earlier entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tenfold._errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
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
)

__all__ = ["CORE_PROBLEMS", "Problem", "ProblemEntry", "ProblemRegistry", "retry_after_header"]

E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True, slots=True)
class Problem(Generic[E]):
    """How exceptions of one class are answered (RFC 9457 problem+json).

    ``title`` defaults to the status phrase and ``type`` to ``about:blank``.
    ``expose_detail`` says whether the exception's message may be shown as
    ``detail``; by default a 4xx shows it and a 5xx never does (the client
    gets a generic detail, the stack is logged with the request id).
    ``detail`` is a fixed text the client gets instead of the message, for
    errors whose message is for operators (a dependency's address, the
    driver's words): the message is logged, the client reads ``detail``.
    ``headers`` and ``extensions`` derive response headers and extra body
    members from the exception (never secrets). A ``ProblemError``'s own
    keyword arguments are always members.
    """

    status: int
    title: str | None = None
    type: str = "about:blank"
    expose_detail: bool | None = None
    headers: Callable[[E], Mapping[str, str]] | None = None
    detail: str | None = None
    extensions: Callable[[E], Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"a problem's status is a 4xx or 5xx, got {self.status!r}")
        if not self.type:
            raise ValueError("a problem's type is a URI; use 'about:blank' for none")

    @property
    def shows_detail(self) -> bool:
        """Whether the client sees the exception's message."""
        return self.status < 500 if self.expose_detail is None else self.expose_detail


#: A table's value: a ``Problem``, or a function that builds one per exception.
ProblemEntry = Problem[Any] | Callable[[Any], Problem[Any]]


class ProblemRegistry:
    """Exception classes mapped to problems; ``lookup(exc)`` finds the closest along the MRO.

    ``ProblemRegistry(*tables)`` starts from ``CORE_PROBLEMS``, then applies
    each table in order (a later entry for the same class replaces an earlier
    one)::

        problems = ProblemRegistry(tenfold.ratelimit.PROBLEMS, {
            OutOfStock: Problem(409, "Out of Stock", type="https://example.com/out-of-stock"),
        })

        @problems.mapper(PaymentDeclined)
        def declined(exc: PaymentDeclined) -> Problem[PaymentDeclined]:
            return Problem(402 if exc.retryable else 403, "Payment Declined")
    """

    def __init__(self, *tables: Mapping[type[BaseException], ProblemEntry]) -> None:
        self._entries: dict[type[BaseException], ProblemEntry] = {}
        self._resolved: dict[type[BaseException], ProblemEntry | None] = {}
        for table in (CORE_PROBLEMS, *tables):
            for exc_type, entry in table.items():
                self.register(exc_type, entry)

    def __repr__(self) -> str:
        return f"ProblemRegistry({len(self._entries)} exception types)"

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[type[BaseException]]:
        return iter(self._entries)

    def __contains__(self, exc_type: object) -> bool:
        return exc_type in self._entries

    def register(self, exc_type: type[E], problem: Problem[E] | Callable[[E], Problem[E]]) -> None:
        """Answer ``exc_type`` (and subclasses without an entry of their own) with ``problem``.

        ``problem`` is a ``Problem``, or a function that builds one for each
        exception (full control: the status may depend on the exception).
        """
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            raise TypeError(f"register an exception class, not {exc_type!r}")
        if not (isinstance(problem, Problem) or callable(problem)):
            raise TypeError(f"map {exc_type.__name__} to a Problem or a function, not {problem!r}")
        self._entries[exc_type] = problem
        self._resolved.clear()

    def mapper(
        self, exc_type: type[E]
    ) -> Callable[[Callable[[E], Problem[E]]], Callable[[E], Problem[E]]]:
        """Decorator form of ``register`` for a function that builds the problem."""

        def decorate(fn: Callable[[E], Problem[E]]) -> Callable[[E], Problem[E]]:
            self.register(exc_type, fn)
            return fn

        return decorate

    def entry(self, exc_type: type[BaseException]) -> ProblemEntry | None:
        """The entry of the closest class of ``exc_type``'s MRO that has one, or None."""
        try:
            return self._resolved[exc_type]
        except KeyError:
            pass
        found = next((self._entries[c] for c in exc_type.__mro__ if c in self._entries), None)
        self._resolved[exc_type] = found
        return found

    def lookup(self, exc: BaseException) -> Problem[Any] | None:
        """The problem for ``exc``, or None when no class of its MRO is registered."""
        entry = self.entry(type(exc))
        if entry is None or isinstance(entry, Problem):
            return entry
        return entry(exc)


def _challenge(exc: Unauthorized) -> dict[str, str]:
    return {"WWW-Authenticate": exc.challenge}


def retry_after_header(default: float | None = 1.0) -> Callable[[BaseException], dict[str, str]]:
    """``headers=`` for exceptions with a ``retry_after`` (seconds): a ``Retry-After`` field.

    Whole seconds, rounded, at least 1; ``default`` when the exception has no
    ``retry_after``, and no field when that is None too.
    """

    def headers(exc: BaseException) -> dict[str, str]:
        seconds = getattr(exc, "retry_after", None)
        if seconds is None:
            seconds = default
        if seconds is None:
            return {}
        return {"Retry-After": str(max(1, round(seconds)))}

    return headers


_T = "https://tenfold.dev/problems/"
_INTERNAL = "Internal Server Error"
_UNAVAILABLE = "Service Unavailable"


def _retry_in_a_second(exc: BaseException) -> dict[str, str]:
    return {"Retry-After": "1"}


def _closing(exc: BaseException) -> dict[str, str]:
    # A draining instance sends clients elsewhere: no keep-alive on this connection.
    return {"Retry-After": "1", "Connection": "close"}


#: The core tree (``tenfold._errors``); every ``ProblemRegistry`` starts from it.
CORE_PROBLEMS: Mapping[type[TenfoldError], ProblemEntry] = {
    TenfoldError: Problem(500, _INTERNAL, type=_T + "internal", expose_detail=False),
    ConfigurationError: Problem(500, _INTERNAL, type=_T + "configuration", expose_detail=False),
    DependencyUnavailable: Problem(
        503,
        _UNAVAILABLE,
        type=_T + "dependency-unavailable",
        headers=retry_after_header(),
        detail="A service this request needs is unavailable. Retry shortly.",
    ),
    DatabaseUnavailable: Problem(
        503,
        _UNAVAILABLE,
        type=_T + "database-unavailable",
        headers=retry_after_header(),
        detail="The database is unavailable. Retry shortly.",
    ),
    DatabaseError: Problem(500, _INTERNAL, type=_T + "database-error", expose_detail=False),
    IntegrityConflict: Problem(409, "Conflict", type=_T + "integrity-conflict"),
    # The value did not fit its column: what request validation would have refused (422).
    InvalidData: Problem(422, "Unprocessable Content", type=_T + "invalid-data"),
    QueryTimeout: Problem(
        503,
        _UNAVAILABLE,
        type=_T + "query-timeout",
        expose_detail=True,
        headers=_retry_in_a_second,
    ),
    ShuttingDown: Problem(
        503, _UNAVAILABLE, type=_T + "shutting-down", expose_detail=True, headers=_closing
    ),
    # Raised by application code with a detail meant for the client, even as a 500.
    ProblemError: Problem(500, _INTERNAL, type=_T + "internal", expose_detail=True),
    BadRequest: Problem(400, "Bad Request", type=_T + "bad-request"),
    InvalidCursor: Problem(400, "Invalid Cursor", type=_T + "invalid-cursor"),
    Unauthorized: Problem(401, "Unauthorized", type=_T + "unauthorized", headers=_challenge),
    Forbidden: Problem(403, "Forbidden", type=_T + "forbidden"),
    NotFound: Problem(404, "Not Found", type=_T + "not-found"),
    Conflict: Problem(409, "Conflict", type=_T + "conflict"),
}
