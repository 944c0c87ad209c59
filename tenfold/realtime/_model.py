"""The values of realtime channels: publications, stream positions and recoveries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tenfold._errors import BadRequest

__all__ = ["Publication", "Recovery", "StreamPosition", "check_channel"]

_CHANNEL = re.compile(r"[A-Za-z0-9:_\-.@/=]{1,200}")


def check_channel(name: str) -> str:
    """``name`` if it is a valid channel name (1-200 of ``A-Za-z0-9:_-.@/=``), else BadRequest.

    Braces are not allowed: the Redis backplane puts the channel in a Cluster
    hash tag, ``{channel}``, so that a channel's keys share one slot.
    """
    if not isinstance(name, str) or _CHANNEL.fullmatch(name) is None:
        raise BadRequest("a channel name is 1-200 characters of A-Z a-z 0-9 : _ - . @ / =")
    return name


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a channel's stream stands: the last offset and the epoch it belongs to.

    Offsets count a channel's publications from 1. The epoch names one life
    of the channel's history: when the history is lost (Redis restarted
    without persistence, the channel expired), the next publication starts a
    new epoch, and positions of the old one can no longer be recovered.
    """

    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Publication:
    """One message published in a channel: its bytes, its offset and epoch."""

    channel: str
    offset: int
    epoch: str
    data: bytes

    @property
    def position(self) -> StreamPosition:
        return StreamPosition(self.offset, self.epoch)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a client that last saw ``since`` missed: the publications after it, in order,
    or ``resync`` when they are not all in history (or the epoch changed)."""

    top: StreamPosition
    publications: list[Publication] = field(default_factory=list)
    resync: bool = False
