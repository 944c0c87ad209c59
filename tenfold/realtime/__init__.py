"""Realtime channels: WebSockets over a backplane, with history, resume and batching.

    RealtimeExtension     the opt-in ``realtime`` extension: the endpoint at
                          TENFOLD_REALTIME__PATH, the Server-Sent Events one at
                          TENFOLD_REALTIME__SSE_PATH, and permission hooks; RealtimeSettings
    Realtime              ``platform.realtime``: ``await publish(channel, data)``
                          from any process, and the endpoint itself
    ChannelHub            this process's channels: gap-free fan-out, batch windows
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
    RealtimeClient        the WebSocket protocol from Python (tests, scripts, benchmarks)
    RealtimeError         an error reply (``code``); RealtimeClosed, the connection closed

The browser client is ``static/tenfold-realtime.js``; browsers without
WebSockets can use ``EventSource`` on the SSE endpoint (docs/realtime_sse.md).
"""

from tenfold.realtime._backplane import Backplane, ChannelListener, MemoryBackplane
from tenfold.realtime._client import RealtimeClient, RealtimeClosed, RealtimeError
from tenfold.realtime._extension import RealtimeExtension
from tenfold.realtime._hub import ChannelHub
from tenfold.realtime._model import Publication, Recovery, StreamPosition, check_channel
from tenfold.realtime._presence import MemoryPresence, Presence, RedisPresence
from tenfold.realtime._problems import PROBLEMS
from tenfold.realtime._redis import RedisBackplane
from tenfold.realtime._service import Permission, Realtime, TokenAuth
from tenfold.realtime._settings import RealtimeSettings

__all__ = [
    "PROBLEMS",
    "Backplane",
    "ChannelHub",
    "ChannelListener",
    "MemoryBackplane",
    "MemoryPresence",
    "Permission",
    "Presence",
    "Publication",
    "Realtime",
    "RealtimeClient",
    "RealtimeClosed",
    "RealtimeError",
    "RealtimeExtension",
    "RealtimeSettings",
    "Recovery",
    "RedisBackplane",
    "RedisPresence",
    "StreamPosition",
    "TokenAuth",
    "check_channel",
]
