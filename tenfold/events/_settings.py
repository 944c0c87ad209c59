"""The events section (``TENFOLD_EVENTS__*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tenfold._section import SettingsSection

__all__ = ["EventsSettings"]


class EventsSettings(SettingsSection):
    """The event store (``TENFOLD_EVENTS__*``): subscriptions, snapshots, relay."""

    poll_interval: float = Field(
        0.1,
        gt=0,
        le=60,
        description="Seconds between two reads of the global log by a subscription that has "
        "caught up (appends in the same process, and hints from other processes when Redis is "
        "configured, wake it at once).",
    )
    page_size: int = Field(
        500, ge=1, le=10_000, description="Events one read of the global log returns at most."
    )

    # -- snapshots: fields for aggregates go here ------------------------------------------
    snapshot_every: int = Field(
        100,
        ge=0,
        description="Aggregates: a snapshot of an aggregate's state is written when a save "
        "moves its stream across a multiple of this many events; 0 turns snapshots off.",
    )

    # -- projections: fields for projection runners go here --------------------------------
    projections_in: Literal["app", "worker", "command"] = Field(
        "app",
        description="Which processes keep the projections caught up: `app` (every serving "
        "process, the embedded profile's one process included), `worker` (the main process of "
        "each `tenfold worker`), or `command` (only `tenfold projections run`). Runners of one "
        "projection in several processes take turns; each event is applied once.",
    )
    projections_max_retry_delay: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Longest wait, in seconds, before a projection whose handler failed is "
        "tried again (the wait doubles from the poll interval).",
    )

    # -- relay: fields for the publishing relay go here ------------------------------------
    relay_enabled: bool = Field(
        False,
        description="Run the relay in this process: a started platform publishes committed "
        "events to the relay target (`tenfold events relay` runs one on its own).",
    )
    relay_target: Literal["auto", "redis", "memory"] = Field(
        "auto",
        description="Where the relay publishes: `redis` (a Redis stream, needs "
        "TENFOLD_REDIS__URL), `memory` (in-process, for consumers in the same process), "
        "`auto` (redis when Redis is configured, else memory).",
    )
    relay_stream_key: str | None = Field(
        None,
        min_length=1,
        description="The Redis stream the relay appends to; unset: `<app name>:events`.",
    )
    relay_maxlen: int = Field(
        1_000_000,
        ge=0,
        description="Length the stream is trimmed to, approximately, on each publish "
        "(`XADD MAXLEN ~`); 0: never trimmed.",
    )
    relay_interval: float = Field(
        0.5,
        gt=0,
        le=60,
        description="Seconds between two passes of the relay when idle (appends in the same "
        "process wake it at once).",
    )
    relay_batch_size: int = Field(
        500, ge=1, le=10_000, description="Events one relay transaction publishes at most."
    )
