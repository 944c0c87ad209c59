"""Realtime channels: publications with offsets and epochs, history and live delivery.

    Backplane             the Protocol: publish, recover, top, listen, forget
    MemoryBackplane       the embedded profile's (one process)
    RedisBackplane        shared by every instance: history in Redis streams,
                          live delivery over the hub's pub/sub
    Publication           one message in a channel: offset, epoch, bytes
    StreamPosition        a channel's (offset, epoch); Recovery, what a client missed
    check_channel         validates a channel name
    Presence              the Protocol: who is in a channel (join, leave,
                          members, count, touch), entries with a heartbeat TTL
    MemoryPresence        the embedded profile's (one process, injected clock)
    RedisPresence         shared by every instance: a hash and a sorted set
                          per channel, expired on Redis's clock

Not built yet: the WebSocket endpoint, batching, SSE and the clients
(see docs/realtime.md).
"""

from tenfold.realtime._backplane import Backplane, ChannelListener, MemoryBackplane
from tenfold.realtime._model import Publication, Recovery, StreamPosition, check_channel
from tenfold.realtime._presence import MemoryPresence, Presence, RedisPresence
from tenfold.realtime._redis import RedisBackplane

__all__ = [
    "Backplane",
    "ChannelListener",
    "MemoryBackplane",
    "MemoryPresence",
    "Presence",
    "Publication",
    "Recovery",
    "RedisBackplane",
    "RedisPresence",
    "StreamPosition",
    "check_channel",
]
