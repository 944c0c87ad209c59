"""The rate limiter's section (`TENFOLD_RATELIMIT__*`): backend, app-wide and per-prefix rules.

Rule lists accept one rule, a comma-separated list or a JSON list, so both
of these work::

    TENFOLD_RATELIMIT__DEFAULT=100/minute
    TENFOLD_RATELIMIT__DEFAULT='["100/minute", "1000/day"]'
    TENFOLD_RATELIMIT__PREFIXES='{"/media": "10/minute"}'

Every rule is parsed here, so a typo stops the process at startup
with the variable's name instead of failing the first request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from tenfold._settings import SettingsSection
from tenfold._settings import json_or_text as _json_or_text

__all__ = ["RateLimitSettings"]


def _rules(value: Any) -> list[str]:
    """``"100/minute"``, ``"100/minute,1000/day"`` or a list of them, each parsed."""
    from tenfold.ratelimit._rule import Rate

    value = _json_or_text(value)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("must be a rule such as '100/minute' or a list of them")
    rules = [item.strip() for item in items if item.strip()]
    for rule in rules:
        Rate.parse(rule)
    if len(set(rules)) < len(rules):
        raise ValueError(f"lists the same rule twice: {rules}")
    return rules


RuleList = Annotated[list[str], NoDecode]


class RateLimitSettings(SettingsSection):
    """Inbound rate limits (`TENFOLD_RATELIMIT__*`): backend, app-wide and per-prefix rules."""

    backend: Literal["auto", "memory", "redis"] = Field(
        "auto", description="auto: redis when TENFOLD_REDIS__* is set, else memory."
    )
    mode: Literal["exact", "lease"] = Field(
        "exact",
        description="exact: one atomic decision per request; lease: spend leases of "
        "tokens locally (admits at most one lease x instances over a limit).",
    )
    lease_size: int | None = Field(
        None,
        ge=1,
        description="Tokens per lease (lease mode); unset: a twentieth of each rule's burst, "
        "1 to 100 (at most 5% over a limit per instance).",
    )
    lease_max_age: float = Field(
        1.0, gt=0, description="Seconds before unspent leased tokens are dropped (lease mode)."
    )
    default: RuleList = Field(
        default_factory=list,
        description="Rules of the app-wide policy, all must pass: '100/minute', "
        "'100/minute,1000/day' or a JSON list; empty: no app-wide policy. Never applied "
        "to the health probes or /metrics.",
    )
    prefixes: Annotated[dict[str, list[str]], NoDecode] = Field(
        default_factory=dict,
        description='Path prefix -> rules (JSON: {"/media": "10/minute"}); each is a '
        "policy of its own.",
    )
    key: Literal["ip", "user", "api_key"] = Field(
        "ip",
        description="What the settings' policies count against: client address, "
        "authenticated user (else address) or API key (else address).",
    )
    api_key_header: str = Field("X-API-Key", min_length=1, description="For key=api_key.")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Moved to TENFOLD_HTTP__TRUSTED_PROXIES, which sets the client address "
        "for the whole app; a value here stops startup.",
    )
    forwarded_header: str | None = Field(
        None,
        description="Moved to TENFOLD_HTTP__FORWARDED_HEADER; a value here stops startup.",
    )
    fail_open: bool | None = Field(
        None,
        description="Serve requests while the backend is down; null: by route kind "
        "(reads open, writes closed).",
    )
    prefix: str = Field("tf:rl:", description="Redis key prefix (no braces).")

    @field_validator("default", mode="before")
    @classmethod
    def _default(cls, value: Any) -> list[str]:
        return _rules(value)

    @field_validator("prefixes", mode="before")
    @classmethod
    def _prefixes(cls, value: Any) -> dict[str, list[str]]:
        value = _json_or_text(value)
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object of path prefix -> rules")
        found: dict[str, list[str]] = {}
        for path, rules in value.items():
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"path prefixes start with '/', got {path!r}")
            try:
                found[path] = _rules(rules)
            except ValueError as exc:
                raise ValueError(f"{path!r}: {exc}") from None
            if not found[path]:
                raise ValueError(f"{path!r} needs at least one rule")
        return found

    @field_validator("trusted_proxies", "forwarded_header", mode="before")
    @classmethod
    def _moved(cls, value: Any, info: ValidationInfo) -> Any:
        # The client address is resolved once for the whole app (request.client, the
        # access log, every key), so the proxies to trust are no longer the limiter's to
        # say; a deployment that still sets them must hear where they went, not be
        # silently keyed on its proxy's address.
        if value in (None, "", [], "[]"):
            return [] if info.field_name == "trusted_proxies" else None
        new = f"TENFOLD_HTTP__{info.field_name.upper()}"
        raise ValueError(
            f"has moved to {new}, which sets the client address for the whole app "
            f"(rate limits, request.client, the access log); set {new} instead"
        )

    @field_validator("prefix")
    @classmethod
    def _no_braces(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("must not hold braces (they would form a Redis Cluster hash tag)")
        return value
