"""Which route (and which policy on it) a request would get, decided *before* the router runs.

Middleware that acts before routing needs the route: a cache hit must skip
routing and validation, and a rate limit must refuse before the handler's
dependencies run. ``RouteTable`` flattens the application's routes once into
an ordered list and replays Starlette's rule on it: the first route whose path
regex matches and whose methods include the method wins; a method mismatch (a
405 candidate) lets later routes try.

* Plain routes and FastAPI ``APIRoute``\\ s are leaves: path regex, methods,
  endpoint, and the policy ``policy_of(endpoint)`` finds (``cache_response``
  for the HTTP cache, ``@rate_limit`` for the limiter).
* ``include_router`` routes are walked through FastAPI's effective route
  contexts, whose regexes already carry the include prefix.
* A ``Mount`` of a router is a group: when its prefix matches, the request is
  committed to it (Starlette never falls back past a mount) and the rest of
  the path is matched against its routes. A mount of any other app, and a
  ``Host`` route, answer "no policy", and so does any route type this walk
  does not know: the table can only ever *miss* a policy, never invent one.

Results are memoised per method and path (bounded). The table is a snapshot:
its owner decides when to rebuild it (``stale(routes)`` says when the routes
list changed size). The HTTP cache checks, after a miss, that the router
really ran the predicted endpoint before it stores anything, so a
disagreement with the router can cost a hit, never serve a wrong body.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any

from starlette.routing import Host, Mount, WebSocketRoute

__all__ = ["RouteMatch", "RouteTable"]

_MEMO_MAX = 4096
_NO_MATCH: Any = None


class RouteMatch:
    """A route that carries a policy, and what a middleware needs to know about it."""

    __slots__ = ("context", "endpoint", "policy", "route", "template")

    def __init__(self, route: Any, context: Any, endpoint: Any, policy: Any, template: str) -> None:
        #: The object the router puts in ``scope["route"]`` (the ``APIRoute`` for FastAPI).
        self.route = route
        #: FastAPI's effective route context for an included route, else None.
        self.context = context
        self.endpoint = endpoint
        self.policy = policy
        #: The full path template, e.g. ``/api/items/{item_id}``; part of the cache key.
        self.template = template

    def __repr__(self) -> str:
        return f"<RouteMatch {self.template} {self.policy!r}>"

    def label(self, scope: MutableMapping[str, Any], router: Any = None) -> None:
        """Make ``scope`` look routed to this route, as the router would have left it,
        so metrics and access logs name the route of a response the router never saw
        (a cache hit, a 429)."""
        if self.route is not None:
            scope["route"] = self.route
        if self.context is not None:
            fastapi_scope = scope.setdefault("fastapi", {})
            if isinstance(fastapi_scope, dict):
                fastapi_scope["effective_route_context"] = self.context
        if router is not None:
            scope.setdefault("router", router)


class _Leaf:
    __slots__ = ("match", "methods", "regex")

    def __init__(self, regex: re.Pattern[str], methods: Any, match: RouteMatch | None) -> None:
        self.regex = regex
        self.methods = frozenset(methods) if methods else None
        self.match = match


class _Group:
    """A mount: a prefix that commits the request, then its own routes."""

    __slots__ = ("entries", "regex")

    def __init__(self, regex: re.Pattern[str], entries: list[_Leaf | _Group]) -> None:
        self.regex = regex
        self.entries = entries


class RouteTable:
    """An ordered, flattened copy of the routes: path -> ``RouteMatch`` of a policy route."""

    def __init__(self, routes: Sequence[Any], policy_of: Callable[[Any], Any | None]) -> None:
        self._policy_of = policy_of
        #: Every policy found (the HTTP cache learns which headers it must read from them).
        self.policies: list[Any] = []
        self._entries = self._flatten(routes, "")
        self._memos: dict[str, dict[str, RouteMatch | None]] = {}
        self._size = len(routes)
        #: False when no route has a policy: the middleware then costs one attribute check.
        self.has_policies = bool(self.policies) and _any_policy(self._entries)

    def stale(self, routes: Sequence[Any]) -> bool:
        """Whether ``routes`` (the list this table was built from) has grown or shrunk since."""
        return len(routes) != self._size

    def match(self, route_path: str, method: str = "GET") -> RouteMatch | None:
        """The policy route a ``method`` request for ``route_path`` would be routed to, or None.

        ``HEAD`` matches as ``GET`` does (Starlette adds HEAD to every GET route).
        """
        memo = self._memos.get(method)
        if memo is None:
            memo = self._memos[method] = {}
        try:
            return memo[route_path]
        except KeyError:
            pass
        found = _match(self._entries, route_path, "GET" if method == "HEAD" else method)
        if len(memo) >= _MEMO_MAX:  # many distinct paths (ids, scanners): start over
            memo.clear()
        memo[route_path] = found
        return found

    def _flatten(self, routes: Iterable[Any], prefix: str) -> list[_Leaf | _Group]:
        entries: list[_Leaf | _Group] = []
        for route in routes:
            contexts = getattr(route, "effective_route_contexts", None)
            if callable(contexts):  # FastAPI include_router
                for context in contexts():
                    entries.extend(self._from_context(context, prefix))
                continue
            entries.extend(self._from_route(route, None, prefix))
        return entries

    def _from_context(self, context: Any, prefix: str) -> list[_Leaf | _Group]:
        starlette_route = getattr(context, "starlette_route", None)
        if starlette_route is not None:  # a plain route, mount or host, already prefixed
            return self._from_route(starlette_route, None, prefix)
        if getattr(context, "path_regex", None) is None:  # e.g. a frontend group: unknown
            return [_stop()]
        original = getattr(context, "original_route", None)
        return [self._leaf(context.path_regex, context.methods, original, context, prefix)]

    def _from_route(self, route: Any, context: Any, prefix: str) -> list[_Leaf | _Group]:
        if isinstance(route, WebSocketRoute):  # FastAPI's APIWebSocketRoute too
            return []  # never matches an HTTP request
        if isinstance(route, Mount):
            inner = route.routes
            if not inner:  # a mounted app we cannot see into
                return [_Leaf(route.path_regex, None, None)]
            return [_Group(route.path_regex, self._flatten(inner, prefix + route.path))]
        if isinstance(route, Host):
            return [_stop()]  # matching hosts is not worth it: routes after it go uncached
        regex = getattr(route, "path_regex", None)
        if regex is None or not hasattr(route, "endpoint"):
            return [_stop()]
        return [self._leaf(regex, getattr(route, "methods", None), route, context, prefix)]

    def _leaf(
        self, regex: re.Pattern[str], methods: Any, route: Any, context: Any, prefix: str
    ) -> _Leaf:
        owner = context if context is not None else route
        endpoint = getattr(owner, "endpoint", None)
        policy = self._policy_of(endpoint) if endpoint is not None else None
        found = None
        if policy is not None:
            self.policies.append(policy)
            template = prefix + (getattr(owner, "path_format", None) or regex.pattern)
            found = RouteMatch(route, context, endpoint, policy, template)
        return _Leaf(regex, methods, found)


def _stop() -> _Leaf:
    """An entry that matches every path and has no policy."""
    return _Leaf(re.compile(""), None, None)


def _match(entries: list[_Leaf | _Group], route_path: str, method: str) -> RouteMatch | None:
    for entry in entries:
        found = entry.regex.match(route_path)
        if found is None:
            continue
        if type(entry) is _Group:
            return _match(entry.entries, "/" + found.group("path"), method)
        methods = entry.methods  # type: ignore[union-attr]
        if methods is None or method in methods:
            return entry.match  # type: ignore[union-attr]
    return _NO_MATCH


def _any_policy(entries: list[_Leaf | _Group]) -> bool:
    for entry in entries:
        if type(entry) is _Group:
            if _any_policy(entry.entries):  # type: ignore[union-attr]
                return True
        elif entry.match is not None:  # type: ignore[union-attr]
            return True
    return False
