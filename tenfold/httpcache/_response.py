"""Response-side rules of the HTTP cache: ETag, Cache-Control, Vary, 304s, what may be stored.

Kept apart from the middleware so each rule reads as one small function, and
so the policy's header values are rendered once per policy, not per request.
``run_detached`` runs a route with no client, for background revalidation.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from hashlib import blake2b

from starlette.types import ASGIApp, Message, Scope

from tenfold.httpcache._policy import CachePolicy

__all__ = ["Prepared", "etag_matches", "not_modified_headers", "prepare", "run_detached"]

# An entity-tag: optional weakness marker, then a quoted opaque tag (commas allowed inside).
_ENTITY_TAG = re.compile(rb'(?:W/)?("[^"]*")')
# RFC 9110 15.4.5: the headers a 304 carries, as the 200 would have.
_NOT_MODIFIED_HEADERS = frozenset(
    {b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary"}
)
# Handler directives that forbid a shared store.
_NOT_STORABLE = (b"no-store", b"no-cache", b"private")
#: What an authenticated response on a shared route says: the browser may keep it,
#: must revalidate (cheap, ETag), and no shared cache may store it.
AUTHENTICATED_CACHE_CONTROL = b"private, no-cache"


class Prepared:
    """The 200's final headers, its ETag, and whether it may be stored."""

    __slots__ = ("etag", "headers", "storable")

    def __init__(self, headers: list[tuple[bytes, bytes]], etag: bytes, storable: bool) -> None:
        self.headers = headers
        self.etag = etag
        self.storable = storable


class _Rendered:
    __slots__ = ("cache_control", "keyed", "vary", "vary_names")

    def __init__(self, policy: CachePolicy) -> None:
        self.cache_control = policy.cache_control().encode("latin-1")
        self.vary = policy.vary_header().encode("latin-1")
        self.vary_names = [n.strip() for n in self.vary.split(b",") if n.strip()]
        self.keyed = {n.lower() for n in self.vary_names}


_rendered: dict[CachePolicy, _Rendered] = {}


def _render(policy: CachePolicy) -> _Rendered:
    found = _rendered.get(policy)
    if found is None:
        # Policies come from decorators, so this holds one item per cached route.
        found = _rendered[policy] = _Rendered(policy)
    return found


def strong_etag(body: bytes) -> bytes:
    """A strong validator: the quoted blake2b-128 of the body."""
    return b'"' + blake2b(body, digest_size=16).hexdigest().encode("ascii") + b'"'


def prepare(
    headers: Iterable[tuple[bytes, bytes]], body: bytes, policy: CachePolicy, shareable: bool
) -> Prepared:
    """Add ETag, Cache-Control and Vary to a 200's headers and decide if it may be stored.

    A handler's own ETag and Cache-Control win over the policy's; ``shareable``
    False (an authenticated request on a shared route) gets ``private, no-cache``.
    """
    rendered = _render(policy)
    out: list[tuple[bytes, bytes]] = []
    etag = cache_control = vary = None
    storable = True
    for name, value in headers:
        if name == b"cache-control":
            cache_control = value
            continue
        if name == b"vary":
            vary = value if vary is None else vary + b", " + value
            continue
        if name == b"age":
            continue
        if name == b"etag":
            etag = value
        elif name == b"set-cookie":
            storable = False
        out.append((name, value))
    if etag is None:
        etag = strong_etag(body)
        out.append((b"etag", etag))
    if cache_control is None:
        cache_control = rendered.cache_control if shareable else AUTHENTICATED_CACHE_CONTROL
    elif any(d in cache_control.lower() for d in _NOT_STORABLE):
        storable = False
    out.append((b"cache-control", cache_control))
    names = list(rendered.vary_names)
    if vary is not None:
        for name in (n.strip() for n in vary.split(b",")):
            if not name or name.lower() in {n.lower() for n in names}:
                continue
            names.append(name)
            if name == b"*" or name.lower() not in rendered.keyed:
                storable = False  # it varies on something the key does not hold
    if names:
        out.append((b"vary", b", ".join(names)))
    return Prepared(out, etag, storable)


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """``If-None-Match`` against ``etag``: ``*``, or any listed tag equal by weak comparison."""
    if if_none_match.strip() == b"*":
        return True
    opaque = etag[2:] if etag.startswith(b"W/") else etag
    return opaque in _ENTITY_TAG.findall(if_none_match)


def not_modified_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers of a 304 for a 200 with ``headers``."""
    return [h for h in headers if h[0] in _NOT_MODIFIED_HEADERS]


async def run_detached(app: ASGIApp, scope: Scope) -> tuple[Message | None, bytes]:
    """Run ``app`` for a bodiless request with no client; its start message and whole body."""
    start: Message | None = None
    chunks: list[bytes] = []
    done = asyncio.Event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # a response that listens for a disconnect gets one when it is done
        return {"type": "http.disconnect"}

    async def collect(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, collect)
    finally:
        done.set()
    return start, b"".join(chunks)
