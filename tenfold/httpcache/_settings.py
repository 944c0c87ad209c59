"""The HTTP response cache's section (`TENFOLD_HTTPCACHE__*`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from tenfold._settings import SettingsSection
from tenfold._settings import json_or_text as _json_or_text
from tenfold.httpcache._request import DEFAULT_CREDENTIAL_HEADERS, DEFAULT_SESSION_COOKIES

__all__ = ["HttpCacheSettings"]


def _names(value: Any) -> list[str]:
    value = _json_or_text(value)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("must be a comma-separated or JSON list of names")
    names = [str(item).strip() for item in items if str(item).strip()]
    for name in names:
        if not name.isascii() or any(c in name for c in ' ;,="\t'):
            raise ValueError(f"{name!r} is not a header or cookie name")
    return names


class HttpCacheSettings(SettingsSection):
    """HTTP response caching of ``cache_response`` routes (`TENFOLD_HTTPCACHE__*`)."""

    enabled: bool = Field(True, description="Serve and store cache_response routes' responses.")
    namespace: str = Field(
        "http", min_length=1, description="Key namespace; change it to drop every entry."
    )
    credential_headers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CREDENTIAL_HEADERS),
        description="Request headers that make a request authenticated even without an "
        "authenticate= resolver: never a shared entry, per-user keys (comma-separated or JSON).",
    )
    session_cookies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SESSION_COOKIES),
        description="Cookie names that do the same (comma-separated or JSON list).",
    )
    max_body_bytes: int = Field(
        1 << 20, ge=0, description="Larger responses pass through: no ETag, not stored."
    )

    @field_validator("credential_headers", "session_cookies", mode="before")
    @classmethod
    def _check_names(cls, value: Any) -> list[str]:
        return _names(value)
