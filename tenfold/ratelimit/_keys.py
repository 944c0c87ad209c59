"""Key functions: what a policy counts against (client IP, user, API key, route).

A key function takes the ASGI scope and returns a string. The address keys read
``scope["client"]``; in a tenfold app the HTTP layer has already resolved it
behind ``TENFOLD_HTTP__TRUSTED_PROXIES``, so ``by_ip()`` with no arguments
counts the same client as every other layer. ``trusted`` makes a key resolve
forwarding headers itself, for an app without that layer. ``by_user`` reads
``current_user_id()``, so whatever authenticates must run outside (before)
``RateLimitMiddleware``; without a user it falls back to the client IP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from starlette.types import Scope

from tenfold._context import current_user_id
from tenfold.web import ClientAddress, IPNetwork

__all__ = ["KeyFunc", "by_api_key", "by_ip", "by_route", "by_user", "composite"]

KeyFunc = Callable[[Scope], str]


#: Set on key functions that never read ``scope["route"]``: the middleware then skips
#: matching the request against the routes when nothing else needs the match.
ROUTE_FREE = "__tenfold_route_free__"
#: The matched route's full template (``/api/items/{item_id}``) in a key function's scope.
ROUTE_TEMPLATE = "tenfold.route_template"


def by_ip(trusted: Sequence[IPNetwork] = (), header: str = "x-forwarded-for") -> KeyFunc:
    """Key on the client address, believing ``header`` only from ``trusted`` proxies."""
    address = ClientAddress(trusted, header)

    def key(scope: Scope) -> str:
        return f"ip:{address(scope) or 'unknown'}"

    return _route_free(key)


def by_user(trusted: Sequence[IPNetwork] = (), header: str = "x-forwarded-for") -> KeyFunc:
    """Key on the authenticated user; anonymous requests on the client address."""
    ip = by_ip(trusted, header)

    def key(scope: Scope) -> str:
        user = current_user_id()
        return f"user:{user}" if user is not None else ip(scope)

    return _route_free(key)


def by_api_key(
    header: str = "x-api-key", trusted: Sequence[IPNetwork] = (), fallback: KeyFunc | None = None
) -> KeyFunc:
    """Key on a SHA-256 of the API key header (never the key itself); without one, the IP."""
    name = header.lower().encode("latin-1")
    other = fallback or by_ip(trusted)

    def key(scope: Scope) -> str:
        for key_name, value in scope.get("headers", ()):
            if key_name.lower() == name and value:
                return f"apikey:{hashlib.sha256(value).hexdigest()[:32]}"
        return other(scope)

    return _route_free(key) if route_free(other) else key


def by_route(scope: Scope) -> str:
    """Key on the method and route template (``GET /items/{item_id}``), else the path."""
    route = getattr(scope.get("route"), "path", None)
    path = scope.get(ROUTE_TEMPLATE) or route or scope.get("path", "")
    # Braces would act as a Redis Cluster hash tag; the template's own are not one.
    path = path.replace("{", "<").replace("}", ">")
    return f"route:{scope.get('method', '')} {path}"


def composite(*keys: KeyFunc) -> KeyFunc:
    """Key on several key functions at once (per user *and* route, say)."""
    if not keys:
        raise ValueError("composite() needs at least one key function")

    def key(scope: Scope) -> str:
        return "|".join(part(scope) for part in keys)

    return _route_free(key) if all(route_free(part) for part in keys) else key


def route_free(key: KeyFunc) -> bool:
    """Whether ``key`` is known never to read ``scope["route"]`` (custom keys: unknown)."""
    return getattr(key, ROUTE_FREE, False) is True


def _route_free(key: KeyFunc) -> KeyFunc:
    setattr(key, ROUTE_FREE, True)
    return key
