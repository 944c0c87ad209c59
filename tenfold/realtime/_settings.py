"""The realtime section (``TENFOLD_REALTIME__*``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import NoDecode

from tenfold._section import SettingsSection, json_or_text

__all__ = ["RealtimeSettings"]

from pydantic import field_validator


class RealtimeSettings(SettingsSection):
    """Realtime channels over WebSockets (``TENFOLD_REALTIME__*``)."""

    path: str = Field("/realtime", description="The WebSocket endpoint's path.")
    batch_window: float = Field(
        0.0,
        ge=0,
        le=5,
        description="Seconds a channel's publications are collected before they go out as "
        "one frame; 0 sends each at once.",
    )
    history_size: int = Field(
        100, ge=0, le=100_000, description="Publications kept per channel for resuming clients."
    )
    history_ttl: int = Field(
        600,
        ge=0,
        description="Seconds a channel's history outlives its last publication (0: for ever).",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins a browser may connect from (comma-separated or JSON, "
        "`https://app.example`); empty: any. A foreign Origin is refused with close 1008.",
    )
    max_frame: int = Field(
        65_536, ge=256, description="Largest frame a client may send, in bytes (close 1009)."
    )
    send_queue: int = Field(
        256,
        ge=1,
        description="Frames queued for one connection before it counts as a slow consumer "
        "and is closed (4001).",
    )
    idle_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds without a frame from the client (its pings included) before "
        "the connection is closed (4002).",
    )
    max_connections_per_ip: int = Field(
        50,
        ge=0,
        description="Open connections per client address, across instances when the rate "
        "limiter is on Redis; 0: no cap. Over it the connection is refused (1008).",
    )
    messages_per_minute: int = Field(
        600,
        ge=0,
        description="Frames one connection may send per minute; 0: no limit. Over it the "
        "connection is closed (4003).",
    )
    presence_ttl: float = Field(
        30.0,
        ge=1,
        description="Seconds a subscriber stays in a channel's presence without a heartbeat "
        "(instances refresh theirs every third of it): how long a dead instance's members "
        "linger.",
    )
    sse_path: str = Field(
        "/realtime/sse",
        description="The Server-Sent Events endpoint's path (`?channel=`), for clients that "
        "cannot use WebSockets; empty: no SSE endpoint.",
    )
    sse_keepalive: float = Field(
        15.0,
        gt=0,
        description="Seconds of silence on an SSE stream before a keep-alive comment is sent "
        "(below the idle timeouts of proxies and load balancers).",
    )
    sse_retry: float = Field(
        3.0,
        ge=0,
        description="Seconds a browser waits before reconnecting a dropped SSE stream "
        "(the stream's `retry:` hint).",
    )
    key_prefix: str | None = Field(
        None, description="Prefix of the Redis keys and channels; unset: `<app name>:rt:`."
    )

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        value = json_or_text(value)
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("sse_path")
    @classmethod
    def _sse_path(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("a path starts with '/' (or is empty: no SSE endpoint)")
        return value
