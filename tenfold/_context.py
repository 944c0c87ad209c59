"""The context that travels with a unit of work: one context variable per concern.

    request id          the id of the request (or job) being served, echoed and logged
    principal           who is acting: a ``Principal`` (id, roles, scopes), or None
    correlation id      the id shared by everything one user action set off
    causation id        the id of the message that directly caused this work
    consistency floor   the WAL position (LSN) this work must be able to read
    trace parent        the W3C ``traceparent`` this work continues

Whatever starts a unit of work binds them (the request-context middleware,
the authentication slot, a job runner), and whatever hands work on takes a
``snapshot()`` and the receiving side ``restore()``\\ s it: outbound HTTP calls
send it as headers, and a job or a WebSocket session carries it the same way.

The principal and the consistency floor are small mutable cells rather than
plain values: they are set deep inside a request (an auth dependency, a
database commit; possibly in the worker thread FastAPI runs a sync
dependency in, with a *copy* of the context), and the layers outside (the
access log, the middleware that writes the consistency header) must see what
was set. The request-context layer binds fresh cells per request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ContextSnapshot",
    "Principal",
    "bind_consistency",
    "bind_principal",
    "current_causation_id",
    "current_consistency_token",
    "current_correlation_id",
    "current_principal",
    "current_request_id",
    "current_traceparent",
    "current_user_id",
    "restore",
    "set_consistency_token",
    "set_principal",
    "snapshot",
]

#: Valid ids on the wire: 1-128 characters of ``[A-Za-z0-9._-]`` (anything else could forge
#: log lines or bloat them).
VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,128}").fullmatch
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}").fullmatch

#: Header names a snapshot travels under (outbound HTTP, job headers).
REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_HEADER = "X-Correlation-ID"
CAUSATION_HEADER = "X-Causation-ID"
TRACEPARENT_HEADER = "traceparent"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: an ``id`` plus optional ``roles`` and ``scopes``.

    ``kind`` says what authenticated (``user``, ``api_key``, ``service``...);
    ``claims`` keeps what the authenticator knew beyond that (never secrets).
    """

    id: str
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    kind: str = "user"
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("a Principal needs a non-empty string id")
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "scopes", frozenset(self.scopes))

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={sorted(v)!r}" for k, v in (("roles", self.roles), ("scopes", self.scopes)) if v
        )
        return f"Principal({self.id!r}, kind={self.kind!r}{extra})"

    @property
    def is_authenticated(self) -> bool:
        """Always True (Starlette's ``request.user`` protocol)."""
        return True

    @property
    def display_name(self) -> str:
        return self.id

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (claims left out: they stay with the process that authenticated)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "roles": sorted(self.roles),
            "scopes": sorted(self.scopes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Principal:
        return cls(
            str(data["id"]),
            roles=frozenset(data.get("roles", ())),
            scopes=frozenset(data.get("scopes", ())),
            kind=str(data.get("kind", "user")),
        )

    @classmethod
    def of(cls, value: Principal | str | None) -> Principal | None:
        """``value`` as a Principal: a plain string is the principal's id."""
        if value is None or isinstance(value, Principal):
            return value
        if isinstance(value, str):
            return cls(value)
        raise TypeError(f"a principal is a tenfold.Principal or a str id, not {type(value)!r}")


class _Floor:
    """The consistency floor of one unit of work (see the module docstring).

    No ``__init__``: the request path makes one per request and sets ``lsn``
    itself, which saves a Python call (``new_floor``).
    """

    __slots__ = ("lsn",)
    lsn: int | None


class _Acting:
    """Who is acting in one unit of work (see the module docstring); see ``_Floor``."""

    __slots__ = ("principal",)
    principal: Principal | None


def new_floor(lsn: int | None = None) -> _Floor:
    floor = _Floor()
    floor.lsn = lsn
    return floor


def new_acting(principal: Principal | None = None) -> _Acting:
    acting = _Acting()
    acting.principal = principal
    return acting


request_id_var: ContextVar[str | None] = ContextVar("tenfold_request_id", default=None)
principal_var: ContextVar[_Acting | None] = ContextVar("tenfold_principal", default=None)
correlation_var: ContextVar[str | None] = ContextVar("tenfold_correlation_id", default=None)
causation_var: ContextVar[str | None] = ContextVar("tenfold_causation_id", default=None)
floor_var: ContextVar[_Floor | None] = ContextVar("tenfold_consistency", default=None)
traceparent_var: ContextVar[str | None] = ContextVar("tenfold_traceparent", default=None)


def current_request_id() -> str | None:
    """The id of the request (or job) being served, or ``None`` outside one."""
    return request_id_var.get()


def current_principal() -> Principal | None:
    """Who is acting, as the authentication slot (or a job's context) resolved it."""
    acting = principal_var.get()
    return acting.principal if acting is not None else None


def current_user_id() -> str | None:
    """The acting principal's id, or None."""
    acting = principal_var.get()
    if acting is None or acting.principal is None:
        return None
    return acting.principal.id


def set_principal(principal: Principal | str | None) -> None:
    """Record who is acting for the rest of this unit of work (a str is the id).

    Set from an auth dependency, it reaches the logs and the access line. Prefer the
    authentication slot (``create_app(authenticate=...)``), which resolves the
    principal *before* the rate limiter and the HTTP cache decide.
    """
    value = Principal.of(principal)
    acting = principal_var.get()
    if acting is None:
        principal_var.set(new_acting(value))
    else:
        acting.principal = value


def bind_principal(principal: Principal | None = None) -> Any:
    """Give this unit of work its own principal cell; returns the ``reset`` token."""
    return principal_var.set(new_acting(principal))


def current_correlation_id() -> str | None:
    """The correlation id: the one work arrived with, else the request id."""
    found = correlation_var.get()
    return found if found is not None else request_id_var.get()


def current_causation_id() -> str | None:
    """The id of the message that caused this work, if it was caused by one."""
    return causation_var.get()


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` this work continues, if it arrived with one."""
    return traceparent_var.get()


def current_consistency_token() -> int | None:
    """The WAL position (as an integer LSN) this work must be able to read."""
    floor = floor_var.get()
    return floor.lsn if floor is not None else None


def bind_consistency(lsn: int | None = None) -> Any:
    """Give this unit of work its own consistency floor; returns the ``reset`` token."""
    return floor_var.set(new_floor(lsn))


def set_consistency_token(lsn: int | None) -> None:
    """Raise the current consistency floor to ``lsn``; it never goes down."""
    if lsn is None:
        return
    floor = floor_var.get()
    if floor is None:
        floor_var.set(new_floor(lsn))
    elif floor.lsn is None or lsn > floor.lsn:
        floor.lsn = lsn


@dataclass(frozen=True, slots=True)
class ContextSnapshot:
    """The context at one moment, to carry to other work (a job, a call, a session)."""

    request_id: str | None = None
    principal: Principal | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    consistency_lsn: int | None = None
    traceparent: str | None = None

    def to_headers(self) -> dict[str, str]:
        """The ids and trace context as headers (the principal never travels in headers)."""
        headers: dict[str, str] = {}
        if self.request_id is not None:
            headers[REQUEST_ID_HEADER] = self.request_id
        if self.correlation_id is not None:
            headers[CORRELATION_HEADER] = self.correlation_id
        if self.causation_id is not None:
            headers[CAUSATION_HEADER] = self.causation_id
        if self.traceparent is not None:
            headers[TRACEPARENT_HEADER] = self.traceparent
        return headers

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, principal included (for a job's own trusted transport)."""
        data: dict[str, Any] = {
            "request_id": self.request_id,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "consistency_lsn": self.consistency_lsn,
            "traceparent": self.traceparent,
        }
        if self.principal is not None:
            data["principal"] = self.principal.to_dict()
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContextSnapshot:
        """The inverse of ``to_dict``; invalid ids and trace contexts are dropped."""
        principal = data.get("principal")
        lsn = data.get("consistency_lsn")
        return cls(
            request_id=_valid_id(data.get("request_id")),
            principal=Principal.from_dict(principal) if isinstance(principal, Mapping) else None,
            correlation_id=_valid_id(data.get("correlation_id")),
            causation_id=_valid_id(data.get("causation_id")),
            consistency_lsn=lsn if isinstance(lsn, int) and lsn >= 0 else None,
            traceparent=valid_traceparent(data.get("traceparent")),
        )


def snapshot() -> ContextSnapshot:
    """The current context, to hand to other work."""
    return ContextSnapshot(
        request_id=request_id_var.get(),
        principal=current_principal(),
        correlation_id=current_correlation_id(),
        causation_id=causation_var.get(),
        consistency_lsn=current_consistency_token(),
        traceparent=traceparent_var.get(),
    )


@contextmanager
def restore(snap: ContextSnapshot) -> Iterator[ContextSnapshot]:
    """Make ``snap`` the current context inside the block; the previous one comes back after."""
    tokens = (
        (request_id_var, request_id_var.set(snap.request_id)),
        (principal_var, principal_var.set(new_acting(snap.principal))),
        (correlation_var, correlation_var.set(snap.correlation_id)),
        (causation_var, causation_var.set(snap.causation_id)),
        (floor_var, floor_var.set(new_floor(snap.consistency_lsn))),
        (traceparent_var, traceparent_var.set(snap.traceparent)),
    )
    try:
        yield snap
    finally:
        for var, token in reversed(tokens):
            var.reset(token)  # type: ignore[attr-defined]


def _valid_id(value: Any) -> str | None:
    return value if isinstance(value, str) and VALID_ID(value) is not None else None


def valid_traceparent(value: Any) -> str | None:
    """``value`` if it is a well-formed W3C traceparent (version 00 form), else None."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or _TRACEPARENT(value) is None:
        return None
    if value.startswith("ff") or value[3:35] == "0" * 32 or value[36:52] == "0" * 16:
        return None
    return value
