"""One index of an app's routes: which route a request gets, decided once, before routing.

Middleware that acts before routing needs the route: a cache hit must skip
routing and validation, a rate limit must refuse before the handler's
dependencies run, and metrics name a response the router never saw (a hit, a
429) by its route template. ``RouteIndex`` flattens the application's routes
once into an ordered list and replays Starlette's rule on it: the first route
whose path regex matches and whose methods include the method wins; a method
mismatch (a 405 candidate) lets later routes try.

* Plain routes and FastAPI ``APIRoute``\\ s are leaves: path regex, methods,
  endpoint, full template.
* ``include_router`` routes are walked through FastAPI's effective route
  contexts, whose regexes already carry the include prefix.
* A ``Mount`` of a router is a group: when its prefix matches, the request is
  committed to it (Starlette never falls back past a mount) and the rest of
  the path is matched against its routes. A mount of any other app, a
  ``Host`` route and any route type this walk does not know answer "no
  route": the index can only ever *miss* a route, never invent one.

A request is matched at most once: the result is kept in the scope under
``ROUTE_MATCH``, so the limiter, the HTTP cache and the metrics share it.
Each middleware looks up its own policy on the match (``match.policy(fn)``,
memoised per route). Matches are also memoised per method and path
(bounded), and the flattened table is rebuilt when the routes list changes
size. ``template(scope)`` gives the route template of a finished request:
the router's own choice (``scope["route"]``) when it ran, by identity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any

from starlette._utils import get_route_path
from starlette.routing import Host, Mount, WebSocketRoute

__all__ = ["ROUTE_MATCH", "UNMATCHED", "RouteIndex", "RouteMatch"]

#: The scope key holding a request's ``RouteMatch`` (or None) once matched.
ROUTE_MATCH = "tenfold.route_match"
#: The label shared by every request no route matched (404s, scanners).
UNMATCHED = "<unmatched>"

_MEMO_MAX = 4096
_UNSET: Any = object()


class RouteMatch:
    """The route a request would be routed to, and what middleware needs to know about it."""

    __slots__ = ("_policies", "context", "endpoint", "route", "template")

    def __init__(self, route: Any, context: Any, endpoint: Any, template: str) -> None:
        #: The object the router puts in ``scope["route"]`` (the ``APIRoute`` for FastAPI).
        self.route = route
        #: FastAPI's effective route context for an included route, else None.
        self.context = context
        self.endpoint = endpoint
        #: The full path template, e.g. ``/api/items/{item_id}``.
        self.template = template
        self._policies: dict[Callable[[Any], Any], Any] = {}

    def __repr__(self) -> str:
        return f"<RouteMatch {self.template}>"

    def policy(self, policy_of: Callable[[Any], Any]) -> Any:
        """``policy_of(endpoint)``, memoised: the policy a middleware attached to this route."""
        try:
            return self._policies[policy_of]
        except KeyError:
            found = self._policies[policy_of] = policy_of(self.endpoint)
            return found

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


class RouteIndex:
    """The routes of one app, flattened when first needed; shared by its middleware."""

    def __init__(self) -> None:
        self._table: _Table | None = None

    def __repr__(self) -> str:
        return f"<RouteIndex {self._table!r}>"

    def table(self, scope: MutableMapping[str, Any], app: Any = None) -> _Table | None:
        """The table of the app serving ``scope`` (``app`` if the scope names none)."""
        owner = scope.get("app", app)
        table = self._table
        # The hot path: the same app, its routes list the same size as when flattened.
        if table is not None and owner is table.owner and len(table._routes) == table._size:
            return table
        routes = getattr(owner, "routes", None)
        if routes is None:
            owner = app
            routes = getattr(app, "routes", None)
            if routes is None:
                return None
        if table is None or owner is not table.owner or table.stale(routes):
            table = self._table = _Table(routes, getattr(owner, "router", owner), owner)
        return table

    def match(
        self, scope: MutableMapping[str, Any], app: Any = None, table: _Table | None = None
    ) -> RouteMatch | None:
        """The route an HTTP request would be routed to, or None; matched once per request.

        ``table`` is the one ``table(scope, app)`` returned, when the caller has it.
        """
        found = scope.get(ROUTE_MATCH, _UNSET)
        if found is not _UNSET:
            return found  # type: ignore[no-any-return]
        if table is None:
            table = self.table(scope, app)
        found = None if table is None else table.match(get_route_path(scope), scope["method"])
        scope[ROUTE_MATCH] = found
        return found

    def template(self, scope: MutableMapping[str, Any]) -> str:
        """The template of the route a finished request was routed (or labelled) to."""
        route = scope.get("route")
        if route is None:
            if "endpoint" not in scope:
                return UNMATCHED  # the router found nothing (a 404, a 405), or never ran
            # A plain Starlette route (FastAPI's /docs and /openapi.json are): it leaves
            # only its endpoint in the scope, so find it by path, as the router did.
            found = self.match(scope) if scope.get("type") == "http" else None
            return found.template if found is not None else UNMATCHED
        key = route
        fastapi_scope = scope.get("fastapi")
        if fastapi_scope:
            context = fastapi_scope.get("effective_route_context")
            if context is not None and getattr(context, "original_route", None) is route:
                key = context
        table = self._table
        if table is not None:
            found = table.templates.get(id(key))
            if found is not None:
                return found
        router = scope.get("router")
        routes = getattr(router, "routes", None)
        if routes is not None and (table is None or table.stale(routes)):
            table = self._table = _Table(routes, router, scope.get("app"))
            found = table.templates.get(id(key))
            if found is not None:
                return found
        return getattr(key, "path_format", None) or getattr(key, "path", None) or UNMATCHED


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


class _Table:
    """An ordered, flattened copy of one routes list, and the template of every route."""

    def __init__(self, routes: Sequence[Any], router: Any, owner: Any = None) -> None:
        self.router = router
        #: The app whose routes these are (the table is rebuilt for another).
        self.owner = owner
        self._routes = routes
        self._size = len(routes)
        self.matches: list[RouteMatch] = []
        self._entries = self._flatten(routes, "")
        self._memos: dict[str, dict[str, RouteMatch | None]] = {}
        self._found: dict[Callable[[Any], Any], list[Any]] = {}
        #: id(route or effective route context) -> full template, for metrics and logs.
        self.templates: dict[int, str] = {}
        _walk(routes, "", self.templates)

    def __repr__(self) -> str:
        return f"<routes: {len(self.matches)}>"

    def stale(self, routes: Sequence[Any]) -> bool:
        """Whether ``routes`` is another list, or this one grew or shrank since."""
        return routes is not self._routes or len(routes) != self._size

    def policies(self, policy_of: Callable[[Any], Any]) -> list[Any]:
        """Every policy ``policy_of`` finds on these routes (empty: the middleware can skip)."""
        found = self._found.get(policy_of)
        if found is None:
            found = [p for m in self.matches if (p := m.policy(policy_of))]
            self._found[policy_of] = found
        return found

    def match(self, route_path: str, method: str = "GET") -> RouteMatch | None:
        """The route a ``method`` request for ``route_path`` would be routed to, or None.

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
            return [_stop()]  # matching hosts is not worth it: routes after it go unmatched
        regex = getattr(route, "path_regex", None)
        if regex is None or not hasattr(route, "endpoint"):
            return [_stop()]
        return [self._leaf(regex, getattr(route, "methods", None), route, context, prefix)]

    def _leaf(
        self, regex: re.Pattern[str], methods: Any, route: Any, context: Any, prefix: str
    ) -> _Leaf:
        owner = context if context is not None else route
        endpoint = getattr(owner, "endpoint", None)
        template = prefix + (getattr(owner, "path_format", None) or regex.pattern)
        found = RouteMatch(route, context, endpoint, template)
        self.matches.append(found)
        return _Leaf(regex, methods, found)


def _stop() -> _Leaf:
    """An entry that matches every path and names no route."""
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
    return None


# -- templates by identity (what the router really chose) -------------------------
#
# Starlette's router stores the matched route in ``scope["route"]``; that route's own
# ``path`` misses whatever sits above it: a ``Mount``'s prefix and, in FastAPI >= 0.16x,
# an ``include_router`` prefix (the original ``APIRoute`` is stored; its effective path
# lives in a context object under ``scope["fastapi"]``). So the full templates are
# computed here, once, and looked up by identity.


def _walk(routes: Iterable[Any], prefix: str, out: dict[int, str]) -> None:
    for route in routes:
        if isinstance(route, Mount):
            out[id(route)] = prefix + route.path_format
            _walk(route.routes, prefix + route.path, out)
            continue
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):  # FastAPI's included router
            for context in contexts():
                _add_effective(context, prefix, out)
            continue
        path = getattr(route, "path_format", None)
        if isinstance(path, str):
            out[id(route)] = prefix + path
        nested = getattr(route, "routes", None)  # Host and other containers
        if nested:
            _walk(nested, prefix, out)


def _add_effective(context: Any, prefix: str, out: dict[int, str]) -> None:
    path = getattr(context, "path_format", None)
    if isinstance(path, str) and path:
        out[id(context)] = prefix + path
    starlette_route = getattr(context, "starlette_route", None)
    if starlette_route is None:
        return
    if isinstance(starlette_route, Mount):
        out[id(starlette_route)] = prefix + starlette_route.path_format
        _walk(starlette_route.routes, prefix + starlette_route.path, out)
        return
    path = getattr(starlette_route, "path_format", None)
    if isinstance(path, str):
        out[id(starlette_route)] = prefix + path
