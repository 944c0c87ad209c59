"""Cache settings (`TENFOLD_CACHE__*`): TTL per namespace, L1 bounds, timeouts, breaker.

tenfold declares no namespace: how long a session or a leaderboard may be
cached is the app's knowledge, not the platform's. A namespace ``namespaces``
does not list lives ``default_ttl`` seconds with a ``stale_ttl`` window. The
app declares its table in code, an operator in the environment::

    settings.with_namespaces(llm=7 * 86400, leaderboard=NamespacePolicy(ttl=5, stale_ttl=5))
    TENFOLD_CACHE__NAMESPACES='{"llm": {"ttl": 604800}, "leaderboard": 2}'

A bare number (or ``null``) is shorthand for ``{"ttl": <number>}``; ``null``
means "no expiry" (the entry lives until evicted by a bound).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["CacheSettings", "NamespacePolicy"]


class NamespacePolicy(BaseModel):
    """How long entries of one namespace live, and where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: float | None = Field(
        ..., gt=0, description="Seconds an entry is fresh; null: no expiry (bounded by LRU)."
    )
    stale_ttl: float | None = Field(
        None,
        ge=0,
        description="Seconds a stale entry may still be served while one refresher reloads; "
        "null: CacheSettings.stale_ttl.",
    )
    negative_ttl: float | None = Field(
        None, ge=0, description="Seconds a 'not found' (None) is cached; null: the global one."
    )
    l1: bool = Field(True, description="Keep entries in the in-process L1 as well as in Redis.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value is None or isinstance(value, int | float):
            return {"ttl": value}
        return value


class CacheSettings(BaseModel):
    """The cache (`TENFOLD_CACHE__*`): TTL policy, L1 bounds, Redis timeout and breaker."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    namespaces: dict[str, NamespacePolicy] = Field(
        default_factory=dict,
        description="TTL policy per namespace (JSON: name -> seconds or {ttl, stale_ttl, "
        "negative_ttl, l1}); a namespace not listed gets default_ttl and stale_ttl. tenfold "
        "declares none: the table is the app's.",
    )
    default_ttl: float | None = Field(
        300.0, gt=0, description="Seconds for namespaces not listed in namespaces."
    )
    stale_ttl: float = Field(
        0.0, ge=0, description="Default stale-while-revalidate window (seconds) per namespace."
    )
    negative_ttl: float = Field(
        30.0, ge=0, description="Seconds a 'not found' (loader returned None) is cached; 0: never."
    )
    l1_max_entries: int = Field(10_000, ge=1, description="Entries kept in the in-process L1.")
    l1_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Bytes (serialized size) kept in the in-process L1."
    )
    serializer: Literal["json", "msgpack", "pickle"] = Field(
        "json", description="L2 format: json (orjson), msgpack (msgspec), pickle (trusted only)."
    )
    compress_threshold: int | None = Field(
        1024, ge=0, description="zlib-compress L2 values of this many bytes or more; null: never."
    )
    redis_timeout: float = Field(
        0.1, gt=0, description="Seconds per Redis command before the cache falls back."
    )
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive Redis failures that open the circuit breaker."
    )
    breaker_reset: float = Field(
        2.0, gt=0, description="Seconds the breaker stays open before one trial call."
    )
    xfetch_beta: float = Field(
        1.0, ge=0, description="XFetch early-refresh eagerness (0: off; >1 refreshes earlier)."
    )
    lock_ttl: float = Field(
        10.0,
        gt=0,
        description="Seconds a cross-process fill lock lives (a dead holder frees it by then).",
    )
    lock_wait: float = Field(
        0.5,
        gt=0,
        description="Seconds a miss waits for another instance's fill of the key before it "
        "loads itself; keep it above the slowest usual loader, well under lock_ttl.",
    )
    invalidation_channel: str = Field(
        "tf:invalidate", min_length=1, description="Redis pub/sub channel for L1 invalidation."
    )
    degraded_l1_ttl: float = Field(
        1.0,
        gt=0,
        description="Max L1 lifetime (s) of entries filled while the invalidation channel is down.",
    )
    warm_check_interval: float | None = Field(
        30.0, gt=0, description="Seconds between checks that L2 was emptied (then warmers rerun)."
    )
    reinvalidate_after: float | None = Field(
        None,
        gt=0,
        description="Repeat each invalidation after this many seconds (set to the replica lag "
        "bound when loaders read replicas); null: once.",
    )

    @field_validator("namespaces", mode="after")
    @classmethod
    def _check_names(cls, value: dict[str, NamespacePolicy]) -> dict[str, NamespacePolicy]:
        from tenfold.cache._keys import _SAFE

        bad = [name for name in value if not _SAFE(name)]
        if bad:
            raise ValueError(f"namespace names must match [A-Za-z0-9_.-]{{1,64}}: {bad}")
        return value

    def with_namespaces(self, **policies: NamespacePolicy | float | None) -> CacheSettings:
        """A copy with ``policies`` added: ``settings.with_namespaces(llm=7 * 86400)``."""
        merged = {**self.namespaces}
        for name, policy in policies.items():
            merged[name] = NamespacePolicy.model_validate(policy)
        fields = self.model_dump(exclude={"namespaces"})
        return self.model_validate({**fields, "namespaces": merged})
