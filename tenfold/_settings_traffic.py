"""Traffic settings: inbound rate limits, idempotency keys, outbound (upstream) clients.

``TENFOLD_RATELIMIT__*``, ``TENFOLD_IDEMPOTENCY__*`` and ``TENFOLD_UPSTREAM__*``.
Rule lists accept one rule, a comma-separated list or a JSON list, so both
of these work::

    TENFOLD_RATELIMIT__DEFAULT=100/minute
    TENFOLD_RATELIMIT__DEFAULT='["100/minute", "1000/day"]'
    TENFOLD_RATELIMIT__PREFIXES='{"/media": "10/minute"}'

Every rule and CIDR is parsed here, so a typo stops the process at startup
with the variable's name instead of failing the first request.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import NoDecode

__all__ = ["IdempotencySettings", "RateLimitSettings", "UpstreamPolicy", "UpstreamSettings"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _json_or_text(value: Any) -> Any:
    if isinstance(value, str) and value.strip().startswith(("[", "{")):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not valid JSON: {exc}") from None
    return value


def _rules(value: Any) -> list[str]:
    """``"100/minute"``, ``"100/minute,1000/day"`` or a list of them, each parsed."""
    from tenfold.ratelimit._rule import Rate  # tenfold.ratelimit imports these settings

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


class RateLimitSettings(_Section):
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
        description="CIDRs of proxies whose forwarded_header is believed "
        "(comma-separated or JSON list).",
    )
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = Field(
        "x-forwarded-for", description="The header your proxy writes."
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

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies(cls, value: Any) -> list[str]:
        value = _json_or_text(value)
        items = value.split(",") if isinstance(value, str) else value
        cidrs = [str(item).strip() for item in items if str(item).strip()]
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP network (e.g. '10.0.0.0/8')") from None
        return cidrs

    @field_validator("prefix")
    @classmethod
    def _no_braces(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("must not hold braces (they would form a Redis Cluster hash tag)")
        return value


class IdempotencySettings(_Section):
    """Idempotency keys (`TENFOLD_IDEMPOTENCY__*`): defaults of IdempotentSession and stores."""

    header: str = Field("Idempotency-Key", min_length=1, description="Request header of the key.")
    ttl: float = Field(24 * 3600.0, gt=0, description="Seconds a stored response is replayed.")
    lease: float = Field(
        60.0,
        gt=0,
        description="Seconds a store reservation blocks duplicates (idempotency_key only).",
    )
    store: Literal["auto", "memory", "redis"] = Field(
        "auto",
        description="Store of idempotency_key() handlers (no DB writes); auto: redis when "
        "TENFOLD_REDIS__* is set, else memory.",
    )
    prefix: str = Field("tf:idem:", description="Redis key prefix of the store.")


class UpstreamPolicy(_Section):
    """What one outbound client gets: httpx timeouts, retry, breaker and bulkhead."""

    timeout: float = Field(
        10.0, gt=0, description="Seconds per httpx operation (read, write, pool wait)."
    )
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect.")
    retry_attempts: int = Field(
        3, ge=1, description="Attempts per call, the first included (1: no retry)."
    )
    retry_deadline: float | None = Field(
        30.0, gt=0, description="Seconds from the first attempt after which no retry starts."
    )
    failure_rate: float = Field(
        0.5, gt=0, le=1, description="Breaker opens at this fraction of failed calls."
    )
    slow_rate: float = Field(
        1.0, gt=0, le=1, description="Breaker opens at this fraction of slow calls."
    )
    slow_call_seconds: float = Field(10.0, gt=0, description="A call this long is slow.")
    minimum_calls: int = Field(10, ge=1, description="Calls in the window before it can open.")
    window_size: int = Field(100, ge=1, description="Calls the breaker judges (count window).")
    open_for: float = Field(30.0, gt=0, description="Seconds open before half-open probes.")
    half_open_probes: int = Field(3, ge=1, description="Calls let through when half-open.")
    max_concurrent: int = Field(20, ge=1, description="Bulkhead: calls in flight at once.")
    max_waiting: int = Field(0, ge=0, description="Bulkhead: calls queued beyond those.")
    quota_limits: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        description='The provider\'s quota known before any response (JSON: {"15m": 100, '
        '"daily": 1000}); set: the client tracks its quota from the first call.',
    )

    @field_validator("quota_limits", mode="before")
    @classmethod
    def _quota_limits(cls, value: Any) -> Any:
        from tenfold.resilience._quota import check_limits  # resilience imports settings

        value = _json_or_text(value)
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object of window -> limit, e.g. {"15m": 100}')
        return check_limits(value)


class UpstreamSettings(UpstreamPolicy):
    """Outbound clients (`TENFOLD_UPSTREAM__*`): the defaults of every `platform.upstream()`."""

    shared: bool = Field(
        True,
        description="With TENFOLD_REDIS__* set, every instance shares each provider's breaker "
        "opens/closes and tracked quota through Redis (else each process keeps its own).",
    )

    providers: Annotated[dict[str, dict[str, Any]], NoDecode] = Field(
        default_factory=dict,
        description='Overrides per provider (JSON: {"strava": {"timeout": 5}}), '
        "applied over the defaults above.",
    )

    @field_validator("providers", mode="before")
    @classmethod
    def _providers(cls, value: Any, info: ValidationInfo) -> Any:
        value = _json_or_text(value)
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ValueError("must be a JSON object of provider -> {setting: value}")
        for name, overrides in value.items():
            try:
                defaults = {k: v for k, v in info.data.items() if k in UpstreamPolicy.model_fields}
                UpstreamPolicy.model_validate({**defaults, **overrides})
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                    for e in exc.errors(include_url=False)
                )
                raise ValueError(f"provider {name!r}: {problems}") from None
        return value

    def policy_for(self, provider: str, **overrides: Any) -> UpstreamPolicy:
        """The policy of ``provider``: these defaults, its ``providers`` entry, ``overrides``."""
        fields = self.model_dump(exclude={"providers", "shared"})
        return UpstreamPolicy.model_validate(
            {**fields, **self.providers.get(provider, {}), **overrides}
        )
