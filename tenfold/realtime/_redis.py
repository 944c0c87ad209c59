"""``RedisBackplane``: channels shared by every instance through Redis.

Each channel has two keys in one Cluster slot (the channel is their hash tag):

    <prefix>{<channel>}:m   a hash: ``e`` the epoch, ``s`` the last offset
    <prefix>{<channel>}:s   a stream: the last ``history_size`` publications,
                            entry id ``<offset>-1``, field ``d`` the bytes

A publication is one Lua call: take the next offset, append to the stream
(trimmed exactly to ``history_size``), refresh both keys' TTL and PUBLISH
``<epoch>:<offset>:<bytes>`` on the pub/sub channel ``<prefix>{<channel>}``.
A channel whose hash is gone (expired, or Redis lost its data) gets a new
epoch at its next use, so a client holding a position of the old epoch is
told to resync instead of being handed offsets that mean something else now.
Live delivery uses the hub's one pub/sub connection; a subscriber that
misses publications while it reconnects reads them back from the stream.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from tenfold.realtime._backplane import ChannelListener, new_epoch, recover_from
from tenfold.realtime._model import Publication, Recovery, StreamPosition

if TYPE_CHECKING:
    from tenfold._bus import Subscription
    from tenfold.redis import RedisHub

__all__ = ["RedisBackplane"]

# KEYS: meta, stream. ARGV: data, history size, ttl seconds, a new epoch, pub/sub channel.
_PUBLISH = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
  redis.call('DEL', KEYS[2])
end
local offset = redis.call('HINCRBY', KEYS[1], 's', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], offset .. '-1', 'd', ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
redis.call('PUBLISH', ARGV[5], epoch .. ':' .. offset .. ':' .. ARGV[1])
return {offset, epoch}
"""

# KEYS: meta, stream. ARGV: a new epoch, ttl seconds, the epoch and offset recovered from
# ('' when not recovering). Returns {offset, epoch, {entries after the offset}}.
_RECOVER = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
  redis.call('DEL', KEYS[2])
  local ttl = tonumber(ARGV[2])
  if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
end
local offset = tonumber(redis.call('HGET', KEYS[1], 's'))
local entries = {}
if ARGV[3] == epoch and tonumber(ARGV[4]) < offset then
  entries = redis.call('XRANGE', KEYS[2], (tonumber(ARGV[4]) + 1) .. '-1', '+')
end
return {offset, epoch, entries}
"""


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


_PUBLISH_SHA, _RECOVER_SHA = _sha(_PUBLISH), _sha(_RECOVER)


class RedisBackplane:
    """Channels in Redis: history in streams, live delivery over pub/sub (see module doc)."""

    def __init__(
        self, hub: RedisHub, *, prefix: str, history_size: int = 100, history_ttl: int = 600
    ) -> None:
        self.hub = hub
        self.prefix = prefix
        self.history_size = history_size
        self.history_ttl = history_ttl

    def __repr__(self) -> str:
        return f"<RedisBackplane prefix={self.prefix!r} history={self.history_size}>"

    def _keys(self, channel: str) -> list[str]:
        base = f"{self.prefix}{{{channel}}}"
        return [f"{base}:m", f"{base}:s"]

    def pubsub_channel(self, channel: str) -> str:
        return f"{self.prefix}{{{channel}}}"

    async def publish(self, channel: str, data: bytes) -> Publication:
        args = [
            data,
            self.history_size,
            self.history_ttl,
            new_epoch(),
            self.pubsub_channel(channel),
        ]
        offset, epoch = await self.hub.scripts.eval(
            self._keys(channel), args, _PUBLISH, _PUBLISH_SHA
        )
        return Publication(channel, int(offset), _text(epoch), data)

    async def recover(self, channel: str, since: StreamPosition | None) -> Recovery:
        top, entries = await self._read(channel, since)
        history = [
            Publication(channel, int(_text(entry_id).split("-", 1)[0]), top.epoch, _field(fields))
            for entry_id, fields in entries
        ]
        return recover_from(top, history, since, self.history_size)

    async def top(self, channel: str) -> StreamPosition:
        return (await self._read(channel, None))[0]

    async def _read(
        self, channel: str, since: StreamPosition | None
    ) -> tuple[StreamPosition, list[Any]]:
        args = [
            new_epoch(),
            self.history_ttl,
            since.epoch if since is not None else "",
            since.offset if since is not None else 0,
        ]
        offset, epoch, entries = await self.hub.scripts.eval(
            self._keys(channel), args, _RECOVER, _RECOVER_SHA
        )
        return StreamPosition(int(offset), _text(epoch)), entries or []

    async def forget(self, channel: str) -> None:
        from tenfold.redis import REDIS_ERRORS, RedisUnavailable

        try:
            await self.hub.client.delete(*self._keys(channel))
        except REDIS_ERRORS as exc:
            raise RedisUnavailable("redis DEL failed") from exc

    def listen(self, channel: str, listener: ChannelListener) -> Subscription:
        return self.hub.pubsub.listen(self.pubsub_channel(channel), _Decoder(channel, listener))


class _Decoder:
    """A pub/sub listener that hands the channel listener ``Publication``s."""

    __slots__ = ("channel", "listener")

    def __init__(self, channel: str, listener: ChannelListener) -> None:
        self.channel = channel
        self.listener = listener

    def on_live(self, channel: str) -> None:
        self.listener.on_live(self.channel)

    def on_message(self, channel: str, data: bytes) -> None:
        epoch, _, rest = data.partition(b":")
        offset, _, payload = rest.partition(b":")
        self.listener.on_publication(
            Publication(self.channel, int(offset), epoch.decode(), payload)
        )

    def on_lost(self, channel: str, reason: str) -> None:
        self.listener.on_lost(self.channel, reason)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(fields: Any) -> bytes:
    """The ``d`` value of a stream entry as a script returns it: ``[b"d", value]``."""
    value = fields[1]
    return value if isinstance(value, bytes) else str(value).encode()
