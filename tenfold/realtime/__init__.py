"""Realtime channels: publications with offsets and epochs, history and live delivery.

    Backplane             the Protocol: publish, recover, top, listen, forget
    MemoryBackplane       the embedded profile's (one process)
    RedisBackplane        shared by every instance: history in Redis streams,
                          live delivery over the hub's pub/sub
    Publication           one message in a channel: offset, epoch, bytes
    StreamPosition        a channel's (offset, epoch); Recovery, what a client missed
    check_channel         validates a channel name
    RealtimeClient        the WebSocket protocol from Python (tests, scripts, benchmarks)
    RealtimeError         an error reply (``code``); RealtimeClosed, the connection closed

The browser client is ``static/tenfold-realtime.js`` (see docs/realtime_clients.md).

Not built yet: the WebSocket endpoint, batching, presence and SSE (see docs/realtime.md).
"""

from tenfold.realtime._backplane import Backplane, ChannelListener, MemoryBackplane
from tenfold.realtime._client import RealtimeClient, RealtimeClosed, RealtimeError
from tenfold.realtime._model import Publication, Recovery, StreamPosition, check_channel
from tenfold.realtime._redis import RedisBackplane

__all__ = [
    "Backplane",
    "ChannelListener",
    "MemoryBackplane",
    "Publication",
    "RealtimeClient",
    "RealtimeClosed",
    "RealtimeError",
    "Recovery",
    "RedisBackplane",
    "StreamPosition",
    "check_channel",
]
