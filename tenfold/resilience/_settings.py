"""The outbound clients' section (`TENFOLD_UPSTREAM__*`): defaults and per-provider policies."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from tenfold._settings import SettingsSection
from tenfold._settings import json_or_text as _json_or_text

__all__ = ["UpstreamPolicy", "UpstreamSettings"]


class UpstreamPolicy(SettingsSection):
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
        from tenfold.resilience._quota import check_limits

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
