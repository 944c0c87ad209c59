"""``cache_response``: the per-route opt-in to HTTP response caching, and its policy.

The decorator only attaches a frozen ``CachePolicy`` to the endpoint function
(``endpoint.__tenfold_cache__``) and returns the function unchanged, so the
signature FastAPI inspects is untouched and decorator order does not matter.
``HttpCacheMiddleware`` finds the policy through its route table.

Everything knowable when the app is built is checked here, with a message
that says what to write instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["IMMUTABLE_MAX_AGE", "CachePolicy", "cache_response", "policy_of"]

F = TypeVar("F", bound=Callable[..., Any])

#: One year: what ``immutable`` assets (content-hashed URLs) are cached for.
IMMUTABLE_MAX_AGE = 31_536_000
_ATTRIBUTE = "__tenfold_cache__"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch
_PER_USER_HEADERS = ("Authorization", "Cookie")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How one route's 200 responses are cached. Build it with ``cache_response``.

    ``max_age``                 seconds browsers (and, without ``s_maxage``, this cache) keep it
    ``s_maxage``                seconds for shared caches: this one and CDNs (public only)
    ``stale_while_revalidate``  seconds a stale entry is still served while one refresh runs
    ``public``                  ``public`` (default) or ``private`` in Cache-Control
    ``per_user``                the user is part of the key; Cache-Control is ``private``
    ``vary``                    request headers that select the representation (keyed + Vary)
    ``immutable``               ``max-age=31536000, immutable`` (content-addressed assets)
    """

    max_age: int
    s_maxage: int | None = None
    stale_while_revalidate: int = 0
    public: bool = True
    per_user: bool = False
    vary: tuple[str, ...] = ()
    immutable: bool = False
    #: Lower-cased request header names whose values are part of the key (read per request,
    #: so computed once).
    keyed_headers: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keyed = tuple(name.lower().encode("latin-1") for name in self.vary)
        object.__setattr__(self, "keyed_headers", keyed)

    @property
    def ttl(self) -> int:
        """Seconds this server-side cache treats an entry as fresh."""
        if self.public and self.s_maxage is not None:
            return self.s_maxage
        return self.max_age

    def cache_control(self) -> str:
        """The ``Cache-Control`` value of a 200 response."""
        parts = ["public" if self.public else "private", f"max-age={self.max_age}"]
        if self.s_maxage is not None:
            parts.append(f"s-maxage={self.s_maxage}")
        if self.stale_while_revalidate:
            parts.append(f"stale-while-revalidate={self.stale_while_revalidate}")
        if self.immutable:
            parts.append("immutable")
        return ", ".join(parts)

    def vary_header(self) -> str:
        """The ``Vary`` value: the declared headers, plus the credentials when per user."""
        names = list(self.vary)
        if self.per_user:
            names.extend(_PER_USER_HEADERS)
        return ", ".join(names)


def cache_response(
    *,
    max_age: int | None = None,
    s_maxage: int | None = None,
    stale_while_revalidate: int = 0,
    public: bool | None = None,
    per_user: bool = False,
    vary: Iterable[str] = (),
    immutable: bool = False,
) -> Callable[[F], F]:
    """Opt a GET route into HTTP response caching; see ``CachePolicy`` for the fields.

    ::

        @router.get("/tournaments/{tid}")
        @cache_response(max_age=60, s_maxage=300, stale_while_revalidate=30)
        async def tournament(tid: int) -> Tournament: ...

    Authenticated requests (``Authorization``, a session cookie, or a user in
    the request context) never share an entry: they bypass the cache unless
    ``per_user=True``, which puts the user in the key and makes the response
    ``private``.
    """
    policy = _build_policy(
        max_age, s_maxage, stale_while_revalidate, public, per_user, tuple(vary), immutable
    )

    def attach(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, policy)
        return endpoint

    return attach


def policy_of(endpoint: Any) -> CachePolicy | None:
    """The policy ``cache_response`` attached to ``endpoint``, or None."""
    policy = getattr(endpoint, _ATTRIBUTE, None)
    return policy if isinstance(policy, CachePolicy) else None


def _build_policy(
    max_age: int | None,
    s_maxage: int | None,
    swr: int,
    public: bool | None,
    per_user: bool,
    vary: tuple[str, ...],
    immutable: bool,
) -> CachePolicy:
    if immutable:
        if max_age is not None:
            raise ValueError(
                "cache_response(immutable=True) implies max-age=31536000; drop max_age"
            )
        max_age = IMMUTABLE_MAX_AGE
    if max_age is None:
        raise ValueError("cache_response needs max_age=<seconds> (or immutable=True)")
    for name, value in (("max_age", max_age), ("s_maxage", s_maxage), ("swr", swr)):
        if value is not None and (type(value) is not int or value < 0):
            raise ValueError(f"cache_response {name} must be an int >= 0, not {value!r}")
    if per_user and public:
        raise ValueError("cache_response(per_user=True) responses are private; drop public=True")
    public = not per_user if public is None else public
    if s_maxage is not None and not public:
        raise ValueError("s-maxage is for shared caches; a private response never enters one")
    for name in vary:
        if not isinstance(name, str) or not _TOKEN(name):
            raise ValueError(f"cache_response vary={name!r} is not a header name")
        if name.lower() in ("authorization", "cookie"):
            raise ValueError(
                f"vary={name!r} would key shared entries by credentials; "
                "use cache_response(per_user=True) instead"
            )
    if len({n.lower() for n in vary}) != len(vary):
        raise ValueError(f"cache_response vary={vary!r} names a header twice")
    return CachePolicy(max_age, s_maxage, swr, public, per_user, vary, immutable)
