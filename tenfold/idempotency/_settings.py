"""The idempotency section (`TENFOLD_IDEMPOTENCY__*`): header, TTLs and the key store."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tenfold._settings import SettingsSection

__all__ = ["IdempotencySettings"]


class IdempotencySettings(SettingsSection):
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
