"""Strict CORS from ``TENFOLD_HTTP__CORS_*``: listed origins, methods and headers only.

Everything a response needs is encoded when the policy is built; per request
there is a set lookup of the ``Origin`` and, for an allowed one, its header
appended. A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is
answered here, before authentication and rate limits, since browsers send it
without credentials: 204 with the allowed methods and headers when the
origin, the method and every requested header are allowed, else a 403
problem without CORS headers, which the browser reports as a CORS failure.
A request from an origin not listed is still served, without CORS headers:
CORS decides what a browser lets a page read, it does not authorise anyone.
"""

from __future__ import annotations

from starlette.types import Scope

from tenfold._http_settings import HttpSettings

__all__ = ["Cors"]

_REQUEST_METHOD = b"access-control-request-method"
_REQUEST_HEADERS = b"access-control-request-headers"
_ALLOW_ORIGIN = b"access-control-allow-origin"
Header = tuple[bytes, bytes]


class Cors:
    """One CORS configuration, encoded once."""

    __slots__ = (
        "any_origin",
        "credentials",
        "headers",
        "methods",
        "origins",
        "preflight_headers",
        "response_headers",
        "varies",
    )

    def __init__(self, settings: HttpSettings) -> None:
        origins = settings.cors_origins
        self.any_origin = "*" in origins
        self.origins = frozenset(origin.encode("ascii") for origin in origins if origin != "*")
        self.credentials = settings.cors_credentials
        self.methods = frozenset(settings.cors_methods)
        self.headers = frozenset(header.lower() for header in settings.cors_headers)
        #: Whether responses depend on the request's Origin (they do unless it is always "*").
        self.varies = not self.any_origin or self.credentials
        common: list[Header] = []
        if self.credentials:
            common.append((b"access-control-allow-credentials", b"true"))
        expose = ", ".join(settings.cors_expose_headers)
        self.response_headers = [*common]
        if expose:
            self.response_headers.append((b"access-control-expose-headers", expose.encode()))
        self.preflight_headers = [
            *common,
            (b"access-control-allow-methods", ", ".join(settings.cors_methods).encode()),
            (b"access-control-max-age", str(settings.cors_max_age).encode()),
        ]
        if settings.cors_headers:
            allowed = ", ".join(settings.cors_headers).encode()
            self.preflight_headers.append((b"access-control-allow-headers", allowed))

    def __repr__(self) -> str:
        origins = "*" if self.any_origin else sorted(o.decode() for o in self.origins)
        return f"<Cors origins={origins} credentials={self.credentials}>"

    def allows(self, origin: bytes) -> bool:
        return self.any_origin or origin.lower() in self.origins

    def allow_origin(self, origin: bytes) -> Header:
        """The Access-Control-Allow-Origin of an allowed ``origin``."""
        if self.any_origin and not self.credentials:
            return (_ALLOW_ORIGIN, b"*")
        return (_ALLOW_ORIGIN, origin)

    def preflight(self, scope: Scope, origin: bytes) -> tuple[bool, str] | None:
        """None if ``scope`` is no preflight; else (allowed, why not) for this ``origin``."""
        method = None
        requested = b""
        for name, value in scope["headers"]:
            if name == _REQUEST_METHOD:
                method = value
            elif name == _REQUEST_HEADERS:
                requested = requested + b"," + value if requested else value
        if method is None:
            return None  # a plain OPTIONS request
        if not self.allows(origin):
            return False, "The origin is not allowed to call this API."
        if method.decode("latin-1").strip().upper() not in self.methods:
            return False, "The method is not allowed for cross-origin requests."
        asked = {h.strip().lower() for h in requested.decode("latin-1").split(",") if h.strip()}
        if not asked <= self.headers:
            return False, "A requested header is not allowed for cross-origin requests."
        return True, ""
