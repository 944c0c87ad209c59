"""The kernel's HTTP section (`TENFOLD_HTTP__*`): how the app is served and who is asking.

One section for everything about serving HTTP, because several layers need
the same answers: the client address behind trusted proxies is what rate
limits count, what ``request.client`` holds and what the access log writes,
and ``tenfold run`` configures uvicorn from the same values. Every CIDR is
parsed here, so a typo stops the process at startup with the variable's name.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from tenfold._section import SettingsSection, json_or_text

__all__ = ["HttpSettings"]

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
    """Serving HTTP (`TENFOLD_HTTP__*`): trusted proxies and the client address."""

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
