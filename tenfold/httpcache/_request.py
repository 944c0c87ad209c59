"""Request side of the HTTP cache: who is asking, may they share, and under which key.

One pass over the request headers picks out the few the cache cares about.
Then:

* **Bypass** (``None``): a method-override header, or a read-your-writes
  token in the request context (``ConsistencyMiddleware`` outside put it
  there): a client that just wrote must read its write, not a cached copy.
* **Authenticated** = a principal in the request context (the authentication
  slot resolved one), a credential header (``Authorization``, ``X-API-Key``:
  names configured) or a session cookie (names configured). On a shared route
  such a request is not *shareable*: it neither reads nor fills an entry. On a
  ``per_user`` route the user is part of the key: the principal's id, kind,
  roles and scopes when there is one (a hit skips the route's guards, so an
  API key of a user's with fewer scopes never gets that user's entry), else
  a blake2b-128 hash of the first credential header's value, else of the
  session cookie's value, so a token never appears in a key in clear (and two
  different credentials never share an entry).
  Anonymous visitors of a per-user route share one entry.
* **Key** = ``key(namespace, route template, scheme://host, path, query,
  declared Vary values, forwarding header values, user)``. The query is
  decoded as Starlette decodes it and sorted by parameter name (stable:
  repeats of one name keep their order, since ``?a=2&a=1`` is a different
  list from ``?a=1&a=2``); both spellings of a space, ``+`` and ``%20``, are
  one key because the handler cannot tell them apart. ``tenfold.cache._keys.key`` hashes every
  part that is not a short safe token, so a hostile path or query cannot
  inject or collide.

Unkeyed headers and cache poisoning: an app that reflects a request header
the key does not hold would let one client choose what everybody gets. So
the values of the forwarding headers (``X-Forwarded-Host/-Proto/-Port/
-Prefix``, ``Forwarded``, ``X-Original-URL``, ``X-Rewrite-URL``...) are *in*
the key whenever one is present: a body built from a forged value is only
served to requests forging the same value. Keying rather than bypassing keeps
the cache useful behind a proxy that sets them on every request. Host and
scheme are keyed as part of the URL. Anything else (``X-Forwarded-For``,
``User-Agent``, cookies other than the session) is not keyed: a cacheable
response must not reflect it, or the route must declare it in ``vary``.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Scope

from tenfold._context import current_consistency_token, current_principal
from tenfold.cache._keys import key as cache_key
from tenfold.httpcache._policy import CachePolicy

__all__ = [
    "DEFAULT_BYPASS_HEADERS",
    "DEFAULT_CREDENTIAL_HEADERS",
    "DEFAULT_FORWARDED_HEADERS",
    "DEFAULT_SESSION_COOKIES",
    "RequestReader",
    "RequestView",
]

#: Request headers a proxy (or a forger) uses to change the URL an app thinks it serves.
DEFAULT_FORWARDED_HEADERS = (
    "Forwarded",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Server",
    "X-Forwarded-Scheme",
    "X-Original-URL",
    "X-Original-Host",
    "X-Rewrite-URL",
    "X-Host",
)
#: Request headers that turn a GET into another method in apps that honour them.
DEFAULT_BYPASS_HEADERS = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")
_ALWAYS = (b"if-none-match", b"cookie", b"host")
#: Request headers that carry a credential unless configured otherwise.
DEFAULT_CREDENTIAL_HEADERS = ("Authorization", "X-API-Key")
#: Cookie names that carry a session unless configured otherwise.
DEFAULT_SESSION_COOKIES = ("session", "sessionid")
_by_name = itemgetter(0)


def _names(headers: Iterable[str]) -> tuple[bytes, ...]:
    return tuple(h.lower().encode("latin-1") for h in headers)


class RequestView:
    """What the cache needs from one request."""

    __slots__ = ("found", "inm", "shareable", "user")

    def __init__(self, found: dict[bytes, bytes], shareable: bool, user: Any) -> None:
        #: The wanted headers present, repeated ones joined.
        self.found = found
        self.inm = found.get(b"if-none-match")
        #: May read and fill a cache entry (anonymous, or a per-user route).
        self.shareable = shareable
        #: The user part of the key on per-user routes.
        self.user = user


class RequestReader:
    """Reads requests for the cache; configured once by the middleware."""

    def __init__(
        self,
        *,
        namespace: str,
        session_cookies: Iterable[str],
        credential_headers: Iterable[str] = DEFAULT_CREDENTIAL_HEADERS,
        forwarded_headers: Iterable[str],
        bypass_headers: Iterable[str],
        bypass_consistency: bool,
    ) -> None:
        cache_key(namespace)  # a bad namespace fails here, when the app is built
        self.namespace = namespace
        self.session_cookies = frozenset(c.encode("latin-1") for c in session_cookies)
        self.credential_headers = _names(credential_headers)
        self.forwarded_headers = _names(forwarded_headers)
        self.bypass_headers = _names(bypass_headers)
        self.bypass_consistency = bypass_consistency
        self._wanted = frozenset(
            (*_ALWAYS, *self.credential_headers, *self.forwarded_headers, *self.bypass_headers)
        )

    def learn(self, policies: Iterable[CachePolicy]) -> None:
        """Also read the headers these policies vary on."""
        extra = [name for policy in policies for name in policy.keyed_headers]
        self._wanted = self._wanted.union(extra)

    def read(self, scope: Scope, policy: CachePolicy) -> RequestView | None:
        """The request as the cache sees it; None when the cache must step aside."""
        wanted = self._wanted
        found: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in wanted:
                prev = found.get(name)
                if prev is None:
                    found[name] = value
                else:  # a repeated header is one list; cookies split by HTTP/2 rejoin with ;
                    found[name] = prev + (b"; " if name == b"cookie" else b", ") + value
        for name in self.bypass_headers:
            if name in found:
                return None
        if self.bypass_consistency and current_consistency_token() is not None:
            return None
        principal = current_principal()
        user_id = principal.id if principal is not None else None
        credential = None
        for name in self.credential_headers:
            credential = found.get(name)
            if credential is not None:
                credential = name + b":" + credential
                break
        session = self._session(found.get(b"cookie"))
        if not policy.per_user:
            anonymous = user_id is None and credential is None and session is None
            return RequestView(found, anonymous, None)
        if principal is not None:
            # Not the id alone: a hit skips the route's guards, so one user's principals
            # holding other permissions (an API key with fewer scopes) share no entry.
            roles, scopes = sorted(principal.roles), sorted(principal.scopes)
            user: Any = ("u", principal.id, principal.kind, roles, scopes)
        elif credential is not None:
            user = ("a", blake2b(credential, digest_size=16).digest())
        elif session is not None:
            user = ("s", blake2b(session, digest_size=16).digest())
        else:
            user = None
        return RequestView(found, True, user)

    def _session(self, cookie: bytes | None) -> bytes | None:
        if cookie is None or not self.session_cookies:
            return None
        for pair in cookie.split(b";"):
            name, eq, value = pair.partition(b"=")
            if eq and name.strip() in self.session_cookies and value.strip():
                return value.strip()
        return None

    def key(self, scope: Scope, route: Any, view: RequestView) -> str:
        """The entry key of a shareable request (see the module docstring); ``route`` has the
        matched ``template`` and its ``policy``."""
        found = view.found
        forwarded = None
        for name in self.forwarded_headers:
            if name in found:
                forwarded = tuple([found.get(n) for n in self.forwarded_headers])
                break
        host = found.get(b"host")
        origin = scope.get("scheme", "http") + "://"
        if host is not None:
            origin += host.decode("latin-1").lower()
        return cache_key(
            self.namespace,
            route.template,
            origin,
            scope["path"],
            _normalized_query(scope["query_string"]),
            tuple([found.get(name) for name in route.policy.keyed_headers]),
            forwarded,
            view.user,
        )


class _QueryMemo:
    """Normalized queries by their raw bytes, bounded by entries and by bytes.

    Hot endpoints see the same few query strings again and again, so the memo saves
    the parse and sort on almost every request. A client can send any number of
    distinct, long query strings, though: a query longer than ``longest`` is never
    kept, and the memo starts afresh once what it keeps reaches ``max_bytes``.
    """

    __slots__ = ("_bytes", "_entries", "longest", "max_bytes", "max_entries")

    def __init__(
        self, *, max_entries: int = 4096, max_bytes: int = 1 << 20, longest: int = 2048
    ) -> None:
        self._entries: dict[bytes, str] = {}
        self._bytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.longest = longest

    def get(self, raw: bytes) -> str | None:
        return self._entries.get(raw)

    def put(self, raw: bytes, normalized: str) -> None:
        if len(raw) > self.longest:
            return
        size = len(raw) + len(normalized)
        if len(self._entries) >= self.max_entries or self._bytes + size > self.max_bytes:
            self.clear()
        self._entries[raw] = normalized
        self._bytes += size

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        """The bytes of the raw and normalized queries kept (not counting dict overhead)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)


_query_memo = _QueryMemo()


def _normalized_query(raw: bytes) -> str:
    """The query's (name, value) pairs as Starlette decodes them, stably sorted by name."""
    normalized = _query_memo.get(raw)
    if normalized is None:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        pairs.sort(key=_by_name)
        normalized = repr(pairs)  # injective: repr escapes every character that could confuse
        _query_memo.put(raw, normalized)
    return normalized
