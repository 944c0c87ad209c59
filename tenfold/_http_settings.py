"""The kernel's HTTP section (`TENFOLD_HTTP__*`): how the app is served and who is asking.

One section for everything about serving HTTP, because several layers need
the same answers: the client address behind trusted proxies is what rate
limits count, what ``request.client`` holds and what the access log writes,
and ``tenfold run`` configures uvicorn from the same values. The same section
holds the request limits, the allowed hosts, CORS and the security headers
that ``tenfold.web.HttpMiddleware`` applies. Every CIDR, origin, host pattern
and header value is checked here, so a typo stops the process at startup with
the variable's name instead of failing requests.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from tenfold._section import SettingsSection, json_or_text

__all__ = ["HttpSettings", "KiB", "MiB"]

#: Byte sizes, for limits that read well: ``max_body_size=10 * MiB``.
KiB = 1024
MiB = 1024 * KiB

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ORIGIN = re.compile(r"https?://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?")
_HOST = re.compile(r"(\*\.)?([a-z0-9-]+\.)*[a-z0-9-]+|\[[0-9a-f:.]+\]")
_REFERRER_POLICIES = frozenset(
    {
        "no-referrer",
        "no-referrer-when-downgrade",
        "origin",
        "origin-when-cross-origin",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
        "unsafe-url",
    }
)

#: A list setting read from a comma-separated string or a JSON list.
TextList = Annotated[list[str], NoDecode]


def text_list(value: Any) -> list[str]:
    """``"a,b"``, ``'["a", "b"]'`` or a list, as stripped non-empty strings."""
    value = json_or_text(value)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("must be a comma-separated list or a JSON list")
    return [str(item).strip() for item in items if str(item).strip()]


class HttpSettings(SettingsSection):
    """Serving HTTP (`TENFOLD_HTTP__*`): proxies, request limits, hosts, CORS, headers."""

    trusted_proxies: TextList = Field(
        default_factory=list,
        description="CIDRs of the proxies in front of the app (comma-separated or JSON "
        "list). Only from these are forwarded_header and X-Forwarded-Proto believed; the "
        "client address they give is request.client, the rate limits' key and the access "
        "log's client. Empty: trust no one, the peer is the client.",
    )
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = Field(
        "x-forwarded-for",
        description="The header your proxy writes: x-forwarded-for (with X-Forwarded-Proto) "
        "or forwarded (RFC 7239, for= and proto=).",
    )

    keep_alive_timeout: int = Field(
        75,
        ge=1,
        description="Seconds `tenfold run` keeps an idle client connection open. Keep it "
        "longer than the keep-alive timeout of the proxy in front (nginx upstream "
        "keepalive_timeout, 60 s by default), so the proxy, not the app, closes idle "
        "connections and never sends a request on one the app is closing.",
    )
    max_body_size: int = Field(
        1 * MiB,
        ge=0,
        description="Bytes a request body may have; larger ones get 413 before they are read "
        "(by Content-Length) or as soon as the count passes it (chunked). A route's own "
        "FastAPI max_body_size= (route, router or include_router) replaces it.",
    )
    max_json_depth: int = Field(
        32, ge=1, description="Nesting depth of arrays and objects a JSON body may have (400)."
    )
    max_json_string: int = Field(
        64 * KiB,
        ge=1,
        description="Characters one string (or key) of a JSON body may have (400).",
    )
    allowed_hosts: TextList = Field(
        default_factory=list,
        description="Host header values the app answers ('api.example.com', '*.example.com'; "
        "comma-separated or JSON list); others get 400. Empty: any host.",
    )
    cors_origins: TextList = Field(
        default_factory=list,
        description="Origins allowed to call the app from a browser ('https://app.example.com', "
        "or '*' for any without credentials). Empty: CORS is off.",
    )
    cors_methods: TextList = Field(
        default_factory=lambda: ["GET", "HEAD", "POST"],
        description="Methods a CORS preflight may ask for.",
    )
    cors_headers: TextList = Field(
        default_factory=lambda: ["Content-Type"],
        description="Request headers a CORS preflight may ask for (case-insensitive).",
    )
    cors_expose_headers: TextList = Field(
        default_factory=list,
        description="Response headers a browser script may read (e.g. X-Request-ID).",
    )
    cors_credentials: bool = Field(
        False, description="Let browsers send cookies and credentials cross-origin."
    )
    cors_max_age: int = Field(600, ge=0, description="Seconds a browser may cache a preflight.")
    hsts_max_age: int = Field(
        365 * 24 * 3600,
        ge=0,
        description="Strict-Transport-Security max-age, sent on HTTPS requests only (the "
        "scheme, or X-Forwarded-Proto from a trusted proxy); 0: not sent.",
    )
    hsts_include_subdomains: bool = Field(False, description="Add includeSubDomains to HSTS.")
    content_type_options: bool = Field(True, description="Send X-Content-Type-Options: nosniff.")
    referrer_policy: str = Field("no-referrer", description="Referrer-Policy; empty: not sent.")
    frame_options: Literal["DENY", "SAMEORIGIN", ""] = Field(
        "DENY", description="X-Frame-Options; empty: not sent."
    )
    content_security_policy: str = Field(
        "frame-ancestors 'none'",
        description="Content-Security-Policy; empty: not sent. The default forbids framing "
        "and leaves the API docs pages working.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies(cls, value: Any) -> list[str]:
        cidrs = text_list(value)
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP network (e.g. '10.0.0.0/8')") from None
        return cidrs

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> list[str]:
        hosts = [host.lower() for host in text_list(value)]
        for host in hosts:
            if host != "*" and not _HOST.fullmatch(host):
                raise ValueError(
                    f"{host!r} is not a host name or '*.domain' pattern (no scheme, port or path)"
                )
        return hosts

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> list[str]:
        origins = [origin.lower().rstrip("/") for origin in text_list(value)]
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin such as 'https://app.example.com'")
        return origins

    @field_validator("cors_methods", "cors_headers", "cors_expose_headers", mode="before")
    @classmethod
    def _tokens(cls, value: Any, info: ValidationInfo) -> list[str]:
        items = text_list(value)
        for item in items:
            if not _TOKEN.fullmatch(item):
                raise ValueError(f"{item!r} is not a method or header name")
        return [item.upper() for item in items] if info.field_name == "cors_methods" else items

    @field_validator("cors_credentials")
    @classmethod
    def _no_wildcard_with_credentials(cls, value: bool, info: ValidationInfo) -> bool:
        if value and "*" in info.data.get("cors_origins", ()):
            raise ValueError(
                "cannot be true while TENFOLD_HTTP__CORS_ORIGINS allows '*': browsers refuse "
                "credentials for any origin; list the origins instead"
            )
        return value

    @field_validator("referrer_policy")
    @classmethod
    def _referrer_policy(cls, value: str) -> str:
        policies = [p.strip().lower() for p in value.split(",") if p.strip()]
        unknown = [p for p in policies if p not in _REFERRER_POLICIES]
        if unknown:
            raise ValueError(
                f"{unknown[0]!r} is not a Referrer-Policy ({sorted(_REFERRER_POLICIES)})"
            )
        return ", ".join(policies)

    @field_validator("content_security_policy")
    @classmethod
    def _header_value(cls, value: str) -> str:
        if not value.isascii() or any(c in value for c in "\r\n\0"):
            raise ValueError("must be a single line of ASCII (it is sent as a header)")
        return value.strip()
