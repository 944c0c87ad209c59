"""HTTP response caching: plain ASGI middleware, opt-in per route with ``cache_response``.

Placement: inside ``ObservabilityMiddleware`` (a hit still gets a request id,
an access line and RED metrics under its route template) and inside
``ConsistencyMiddleware`` (whose read-your-writes token makes the cache step
aside), outside the router. A hit is answered before routing and validation.

For a GET or HEAD whose route has a policy (the app's shared ``RouteIndex``
finds the route from the path alone, see ``tenfold.web.RouteIndex``; who may
share and the key: ``_request``):

* **Hit**: the stored 200 with ``Age``, or a 304 when ``If-None-Match``
  matches (weak comparison, lists and ``*``). HEAD is answered from the GET
  entry without the body. Within ``stale_while_revalidate`` after expiry the
  stale entry is served and one background refresh per key reruns the route.
* **Miss**: the route runs (a HEAD runs as the GET it mirrors, so it can fill
  the entry); the response is buffered up to ``max_body_bytes`` to compute a
  strong ETag (blake2b-128 of the body, unless the handler set one) and to
  answer 304. It is stored only if it is a 200 with no ``Set-Cookie``, no
  ``no-store`` / ``no-cache`` / ``private`` from the handler, no ``Vary``
  beyond the keyed headers, and the router really ran the endpoint the table
  predicted (``scope["endpoint"]``). Larger bodies pass through untouched.
* **Not shareable** (authenticated on a shared route): the route runs, the
  response gets ETag/304 and ``private, no-cache``, nothing is read or stored.

Freshness uses the injected wall ``clock`` and the time stored in the entry
(entries are shared between processes); the store's own TTL is
``ttl + stale_while_revalidate`` and only bounds memory. Store errors
(``CacheUnavailable``) make a request uncached, never a 5xx. The counters
(``stats()``) are plain integers for the metrics layer to read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenfold._routes import RouteIndex, RouteMatch
from tenfold.cache._errors import CacheUnavailable
from tenfold.httpcache._policy import CachePolicy, policy_of
from tenfold.httpcache._request import (
    DEFAULT_BYPASS_HEADERS,
    DEFAULT_CREDENTIAL_HEADERS,
    DEFAULT_FORWARDED_HEADERS,
    DEFAULT_SESSION_COOKIES,
    RequestReader,
    RequestView,
)
from tenfold.httpcache._response import (
    Prepared,
    etag_matches,
    not_modified_headers,
    prepare,
    run_detached,
)
from tenfold.httpcache._store import (
    EntryStore,
    ResponseStore,
    StoredResponse,
    decode_entry,
    encode_entry,
)
from tenfold.observability import get_logger

__all__ = ["HttpCacheMiddleware"]


class CachedRoute:
    """A matched route and its ``CachePolicy``, for one request."""

    __slots__ = ("match", "policy", "router")

    def __init__(self, match: RouteMatch, policy: CachePolicy, router: Any) -> None:
        self.match = match
        self.policy = policy
        #: The app's router, for labelling a hit (the router never runs for it).
        self.router = router

    @property
    def template(self) -> str:
        return self.match.template

    @property
    def endpoint(self) -> Any:
        return self.match.endpoint


_log = get_logger("tenfold.cache.http")

_COUNTERS = (
    "hits",
    "stale_hits",
    "misses",
    "stores",
    "not_modified",
    "bypassed",
    "uncacheable",
    "refreshes",
    "errors",
)
_CONDITIONAL = frozenset({b"if-none-match", b"if-modified-since"})


class HttpCacheMiddleware:
    """Caches 200 GET responses of routes decorated with ``cache_response``.

    ``store``               where entries live (``LocalResponseStore``, ``BackendResponseStore``)
    ``local``               an in-process tier (``LocalResponseStore``) in front of a shared store
    ``namespace``           key namespace; change it (e.g. per deploy) to drop all entries
    ``session_cookies``     cookie names that mean "this request is authenticated"
    ``credential_headers``  request headers that mean the same (Authorization, X-API-Key)
    ``forwarded_headers``   request headers whose values are part of every key
    ``bypass_headers``      request headers that make the cache step aside entirely
    ``bypass_consistency``  step aside for requests carrying a read-your-writes token
    ``max_body_bytes``      larger responses pass through untouched: no ETag, not stored
    ``clock``               wall-clock seconds (entries are shared between processes)
    ``index``               the app's shared ``RouteIndex`` (one is made if not given)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: ResponseStore,
        local: EntryStore | None = None,
        namespace: str = "http",
        session_cookies: Iterable[str] = DEFAULT_SESSION_COOKIES,
        credential_headers: Iterable[str] = DEFAULT_CREDENTIAL_HEADERS,
        forwarded_headers: Iterable[str] = DEFAULT_FORWARDED_HEADERS,
        bypass_headers: Iterable[str] = DEFAULT_BYPASS_HEADERS,
        bypass_consistency: bool = True,
        max_body_bytes: int = 1 << 20,
        clock: Callable[[], float] = time.time,
        index: RouteIndex | None = None,
    ) -> None:
        self.app = app
        #: The app's routes, shared with the other middleware (a request is matched once).
        self.index = index or RouteIndex()
        self.store = store
        # In-process stores keep decoded entries, so a hit skips the codec; in front of a
        # shared store, ``local`` saves the round trip for entries this process has seen.
        if isinstance(store, EntryStore):
            self._local: EntryStore | None = store
            self._shared: ResponseStore | None = None
        else:
            self._local, self._shared = local, store
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.requests = RequestReader(
            namespace=namespace,
            session_cookies=session_cookies,
            credential_headers=credential_headers,
            forwarded_headers=forwarded_headers,
            bypass_headers=bypass_headers,
            bypass_consistency=bypass_consistency,
        )
        # The routes table whose policies ``requests`` learned, and whether it has any.
        self._learned: tuple[object, bool] | None = None
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        # Plain counters (``stats()``): the metrics layer reads them, nothing here exports.
        self.hits = 0  # fresh entries served
        self.stale_hits = 0  # stale entries served while a refresh runs
        self.misses = 0  # shareable lookups that ran the route
        self.stores = 0
        self.not_modified = 0  # 304s, from hits and misses
        self.bypassed = 0  # policy routes the cache stepped aside for (auth, overrides)
        self.uncacheable = 0  # shareable responses that could not be stored
        self.refreshes = 0  # background revalidations started
        self.errors = 0  # store failures, unreadable entries, failed refreshes

    def stats(self) -> dict[str, float]:
        """The counters, plus ``hit_ratio`` = (hits + stale hits) / lookups."""
        counts: dict[str, float] = {name: getattr(self, name) for name in _COUNTERS}
        lookups = self.hits + self.stale_hits + self.misses
        counts["hit_ratio"] = (self.hits + self.stale_hits) / lookups if lookups else 0.0
        return counts

    async def drain(self) -> None:
        """Wait for the background refreshes under way (tests, shutdown)."""
        while self._refreshing:
            await asyncio.gather(*self._refreshing.values(), return_exceptions=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        route = self._route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        req = self.requests.read(scope, route.policy)
        if req is None:
            self.bypassed += 1
            await self.app(scope, receive, send)
            return
        entry_key = self.requests.key(scope, route, req) if req.shareable else None
        if entry_key is None:
            self.bypassed += 1
        elif await self._serve_hit(scope, send, route, req, entry_key):
            return
        else:
            self.misses += 1
        await self._fill(scope, receive, send, route, req, entry_key)

    def _route(self, scope: Scope) -> CachedRoute | None:
        """The request's route and its policy, if its route has one."""
        index = self.index
        table = index.table(scope, self.app)
        if table is None:
            return None
        learned = self._learned
        if learned is None or learned[0] is not table:
            # New routes: read the headers their policies vary on.
            policies = table.policies(policy_of)
            self.requests.learn(policies)
            learned = self._learned = (table, bool(policies))
        if not learned[1]:
            return None
        found = index.match(scope, self.app, table)
        if found is None:
            return None
        policy = found.policy(policy_of)
        return CachedRoute(found, policy, table.router) if policy is not None else None

    async def _serve_hit(
        self, scope: Scope, send: Send, route: CachedRoute, req: RequestView, entry_key: str
    ) -> bool:
        """Answer from the store if it holds a fresh (or revalidating) entry."""
        entry = await self._load(entry_key, route.policy)
        if entry is None:
            return False
        policy = route.policy
        age = self.clock() - entry.stored_at
        if age >= policy.ttl:
            if age >= policy.ttl + policy.stale_while_revalidate:
                return False
            self.stale_hits += 1
            self._refresh_later(scope, route, req, entry_key)
        else:
            self.hits += 1
        route.match.label(scope, route.router)
        age_header = (b"age", b"%d" % max(age, 0))
        if req.inm is not None and etag_matches(req.inm, entry.etag):
            self.not_modified += 1
            headers = [*not_modified_headers(entry.headers), age_header]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers = [*entry.headers, age_header]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else entry.body
        await send({"type": "http.response.body", "body": body})
        return True

    async def _load(self, entry_key: str, policy: CachePolicy) -> StoredResponse | None:
        """The entry from the local tier, else from the shared store (then kept locally)."""
        local, shared = self._local, self._shared
        entry = local.get_entry(entry_key) if local is not None else None
        if entry is not None or shared is None:
            return entry
        try:
            data = await shared.get(entry_key)
        except CacheUnavailable:
            self.errors += 1
            return None
        if data is None:
            return None
        entry = decode_entry(data)
        if entry is None:
            self.errors += 1
        elif local is not None:
            # HTTP entries are never invalidated, only aged, so a local copy stays exactly
            # as valid as the shared one for the rest of its life.
            left = entry.stored_at + policy.ttl + policy.stale_while_revalidate - self.clock()
            if left > 0:
                local.set_entry(entry_key, entry, left)
        return entry

    async def _fill(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: CachedRoute,
        req: RequestView,
        entry_key: str | None,
    ) -> None:
        """Run the route, answer with ETag/304 and policy headers, store what may be stored."""
        head = scope["method"] == "HEAD"
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        streaming = finished = False

        async def flush() -> None:
            # Too big or not a plain body: headers as they are, then pass through.
            nonlocal streaming
            streaming = True
            if entry_key is not None:
                self.uncacheable += 1
            if start is not None:
                await send(start)
            if chunks and not head:
                await send(
                    {"type": "http.response.body", "body": b"".join(chunks), "more_body": True}
                )

        async def capture(message: Message) -> None:
            nonlocal start, size, finished
            kind = message["type"]
            if streaming:
                if head and kind == "http.response.body":
                    message = {**message, "body": b""}
                await send(message)
            elif kind == "http.response.start":
                start = message
            elif kind == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > self.max_body_bytes:
                    await flush()
                    if not more:
                        await send({"type": "http.response.body", "body": b""})
                elif not more:
                    finished = True
                    await self._answer(scope, send, route, req, entry_key, start, chunks, head)
            else:
                await flush()
                await send(message)

        if head:  # run it as the GET it mirrors, so the entry (and the ETag) can be filled
            scope["method"] = "GET"
        try:
            await self.app(scope, receive, capture)
        finally:
            if head:
                scope["method"] = "HEAD"
        if start is not None and not streaming and not finished:
            await flush()  # the app returned without a last body message
            await send({"type": "http.response.body", "body": b""})

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        route: CachedRoute,
        req: RequestView,
        entry_key: str | None,
        start: Message,
        chunks: list[bytes],
        head: bool,
    ) -> None:
        body = b"".join(chunks)
        if start["status"] != 200:
            if entry_key is not None:
                self.uncacheable += 1
            await send(start)
            await send({"type": "http.response.body", "body": b"" if head else body})
            return
        prepared = prepare(start.get("headers", ()), body, route.policy, req.shareable)
        storable = entry_key is not None and prepared.storable
        if storable and scope.get("endpoint") is not route.endpoint:
            storable = False  # the router disagreed with the table: never store a guess
        if req.inm is not None and etag_matches(req.inm, prepared.etag):
            self.not_modified += 1
            headers = not_modified_headers(prepared.headers)
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        else:
            # A copy: layers outside may edit the list in place, and it is what gets stored.
            await send({**start, "headers": list(prepared.headers)})
            await send({"type": "http.response.body", "body": b"" if head else body})
        if entry_key is not None:
            await self._store(entry_key, route.policy, prepared, body, storable)

    async def _store(
        self, entry_key: str, policy: CachePolicy, prepared: Prepared, body: bytes, ok: bool
    ) -> None:
        ttl = policy.ttl
        if not ok or ttl <= 0:
            self.uncacheable += 1
            return
        ttl += policy.stale_while_revalidate
        now = self.clock()
        if self._local is not None:
            self._local.set_entry(
                entry_key, StoredResponse(prepared.headers, body, prepared.etag, now), ttl
            )
        if self._shared is not None:
            data = encode_entry(prepared.headers, body, prepared.etag, now)
            try:
                await self._shared.set(entry_key, data, ttl)
            except CacheUnavailable:
                self.errors += 1
                return
        self.stores += 1

    def _refresh_later(
        self, scope: Scope, route: CachedRoute, req: RequestView, entry_key: str
    ) -> None:
        """Start one background run of the route for a stale entry (one per key at a time)."""
        if entry_key in self._refreshing:
            return
        headers = [(n, v) for n, v in scope["headers"] if n not in _CONDITIONAL]
        fresh_scope = {**scope, "method": "GET", "headers": headers}
        task = asyncio.get_running_loop().create_task(
            self._refresh(fresh_scope, route, req, entry_key)
        )
        self._refreshing[entry_key] = task
        task.add_done_callback(lambda _: self._refreshing.pop(entry_key, None))

    async def _refresh(
        self, scope: Scope, route: CachedRoute, req: RequestView, entry_key: str
    ) -> None:
        self.refreshes += 1
        try:
            start, body = await run_detached(self.app, scope)
        except Exception:  # a background run has no client to answer: log it, keep serving
            self.errors += 1
            _log.warning("http_cache_refresh_failed", route=route.template, exc_info=True)
            return
        if start is None or start["status"] != 200 or len(body) > self.max_body_bytes:
            self.uncacheable += 1
            return
        prepared = prepare(start.get("headers", ()), body, route.policy, req.shareable)
        ok = prepared.storable and scope.get("endpoint") is route.endpoint
        await self._store(entry_key, route.policy, prepared, body, ok)
