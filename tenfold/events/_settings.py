"""The events section (``TENFOLD_EVENTS__*``)."""

from __future__ import annotations

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
    snapshot_every: int = Field(
        100,
        ge=0,
        description="Aggregates: a snapshot of an aggregate's state is written when a save "
        "moves its stream across a multiple of this many events; 0 turns snapshots off.",
    )

    # -- projections: fields for projection runners go here --------------------------------

    # -- relay: fields for the publishing relay go here ------------------------------------
