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
        "caught up (appends in the same process wake it at once).",
    )
    page_size: int = Field(
        500, ge=1, le=10_000, description="Events one read of the global log returns at most."
    )

    # -- snapshots: fields for aggregates go here ------------------------------------------

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
