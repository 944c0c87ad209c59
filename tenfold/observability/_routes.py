"""The route *template* a request matched, for metric labels and log lines.

Starlette's router stores the matched route in ``scope["route"]``, mutating
the very scope dict the outer middleware holds. That route's ``path`` misses
whatever sits above it: the prefix of a ``Mount`` (whose own ``scope["route"]``
the inner router overwrites) and, in FastAPI >= 0.16x, the prefix of an
``include_router`` (the original ``APIRoute`` is stored; its effective path
lives in a context object under ``scope["fastapi"]``).

So the full templates are computed once by walking the top-level router
(``scope["router"]``) and looked up by object identity per request. A route
the walk did not find (added later, or a router type we do not know) falls
back to its own ``path_format``: possibly missing a prefix, never a raw path.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from starlette.routing import Mount

__all__ = ["UNMATCHED", "RouteTemplates"]

#: The label shared by every request no route matched (404s, scanners).
UNMATCHED = "<unmatched>"


class RouteTemplates:
    """Maps the matched route of a finished request to its full path template."""

    __slots__ = ("_templates", "_walked")

    def __init__(self) -> None:
        self._templates: dict[int, str] = {}
        # Router id -> how many routes it had when walked; a change means re-walk.
        self._walked: dict[int, int] = {}

    def template(self, scope: MutableMapping[str, Any]) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        key = route
        fastapi_scope = scope.get("fastapi")
        if fastapi_scope:
            context = fastapi_scope.get("effective_route_context")
            if context is not None and getattr(context, "original_route", None) is route:
                key = context
        found = self._templates.get(id(key))
        if found is not None:
            return found
        return self._resolve(scope, key)

    def _resolve(self, scope: MutableMapping[str, Any], key: Any) -> str:
        router = scope.get("router")
        routes = getattr(router, "routes", None)
        if routes is not None and self._walked.get(id(router)) != len(routes):
            self._walked[id(router)] = len(routes)
            _walk(routes, "", self._templates)
            found = self._templates.get(id(key))
            if found is not None:
                return found
        fallback = getattr(key, "path_format", None) or getattr(key, "path", None) or UNMATCHED
        # Routes live as long as the app, so their ids are stable keys.
        self._templates[id(key)] = fallback
        return fallback


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
