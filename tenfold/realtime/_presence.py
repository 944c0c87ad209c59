"""Presence: which connections are subscribed to a channel, across instances.

    join(channel, client_id, info)   a connection is in the channel, with small JSON info
    leave(channel, client_id)        it left (unsubscribed, disconnected)
    members(channel)                 {client_id: info} of the live entries
    count(channel)                   how many, without reading the entries
    touch(entries)                   heartbeats of many (channel, client_id) at once

Every entry lives ``ttl`` seconds after its last join or touch. Each instance
touches all its live subscriptions every few seconds (well under ``ttl``), so
the entries of an instance that died without a word disappear by themselves
within ``ttl``. An entry whose time ran out is gone for good: ``touch`` does
not bring it back, it returns it, so that the instance joins it again with
its info.

``MemoryPresence`` is the embedded profile's (one process) and the tests';
``RedisPresence`` is shared by every instance (see its docstring for keys).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tenfold._errors import ConfigurationError

if TYPE_CHECKING:
    from tenfold.redis import RedisHub

__all__ = ["MemoryPresence", "Presence", "RedisPresence"]

#: The client ids one touch script refreshes at most: a bigger channel takes
#: several calls, so that no single script holds Redis for long.
TOUCH_CHUNK = 500

Entry = tuple[str, str]  # (channel, client_id)


@runtime_checkable
class Presence(Protocol):
    """Who is in a channel: entries with a heartbeat TTL (memory, Redis)."""

    ttl: float

    async def join(self, channel: str, client_id: str, info: dict[str, Any]) -> None:
        """Add (or replace) ``client_id``'s entry, alive for ``ttl`` seconds."""
        ...

    async def leave(self, channel: str, client_id: str) -> None:
        """Remove ``client_id``'s entry (nothing if it is not there)."""
        ...

    async def members(self, channel: str) -> dict[str, dict[str, Any]]:
        """The channel's live entries: client id -> info."""
        ...

    async def count(self, channel: str) -> int:
        """How many live entries the channel has, without reading them."""
        ...

    async def touch(self, entries: Iterable[Entry]) -> list[Entry]:
        """Keep ``entries`` alive another ``ttl``; return those already gone (expired or
        never joined), which the caller joins again if they are still live."""
        ...


def _encode(info: dict[str, Any]) -> str:
    if not isinstance(info, dict):
        raise TypeError(f"presence info is a dict, not {type(info).__name__}")
    return json.dumps(info, separators=(",", ":"))


class MemoryPresence:
    """Presence in this process, expired on read against an injected ``clock``.

    ``clock`` must never go back (the default is ``time.monotonic``): each
    channel keeps its entries in expiry order, so reads drop the expired ones
    from the front, and ``count`` costs no more than the expired entries.
    """

    def __init__(self, *, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        # channel -> client_id -> (expiry, encoded info), oldest expiry first
        self._channels: dict[str, OrderedDict[str, tuple[float, str]]] = {}

    def __repr__(self) -> str:
        return f"<MemoryPresence ttl={self.ttl} channels={len(self._channels)}>"

    def _live(self, channel: str) -> OrderedDict[str, tuple[float, str]] | None:
        entries = self._channels.get(channel)
        if entries is None:
            return None
        now = self._clock()
        while entries:
            client_id, (expiry, _) = next(iter(entries.items()))
            if expiry > now:
                break
            del entries[client_id]
        if not entries:
            del self._channels[channel]
            return None
        return entries

    async def join(self, channel: str, client_id: str, info: dict[str, Any]) -> None:
        encoded = _encode(info)
        entries = self._live(channel)
        if entries is None:
            entries = self._channels[channel] = OrderedDict()
        entries[client_id] = (self._clock() + self.ttl, encoded)
        entries.move_to_end(client_id)

    async def leave(self, channel: str, client_id: str) -> None:
        entries = self._live(channel)
        if entries is not None:
            entries.pop(client_id, None)
            if not entries:
                del self._channels[channel]

    async def members(self, channel: str) -> dict[str, dict[str, Any]]:
        entries = self._live(channel)
        if entries is None:
            return {}
        return {client_id: json.loads(info) for client_id, (_, info) in entries.items()}

    async def count(self, channel: str) -> int:
        entries = self._live(channel)
        return 0 if entries is None else len(entries)

    async def touch(self, entries: Iterable[Entry]) -> list[Entry]:
        gone: list[Entry] = []
        expiry = self._clock() + self.ttl
        for channel, client_id in entries:
            live = self._live(channel)
            if live is None or client_id not in live:
                gone.append((channel, client_id))
                continue
            live[client_id] = (expiry, live[client_id][1])
            live.move_to_end(client_id)
        return gone


# Time is Redis's own (TIME, in ms) so that instances with skewed clocks agree.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: hash, zset. ARGV: ttl ms, client id, info.
_JOIN = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""
)

# KEYS: hash, zset. ARGV: client id.
_LEAVE = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""

# KEYS: hash, zset. ARGV: ttl ms, client ids... Returns the ids that were gone.
_TOUCH = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
local gone = {}
local live = 0
for i = 2, #ARGV do
  local expiry = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if expiry and tonumber(expiry) > now then
    redis.call('ZADD', KEYS[2], 'XX', now + ttl, ARGV[i])
    live = live + 1
  else
    if expiry then
      redis.call('ZREM', KEYS[2], ARGV[i])
      redis.call('HDEL', KEYS[1], ARGV[i])
    end
    gone[#gone + 1] = ARGV[i]
  end
end
if live > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return gone
"""
)

# KEYS: hash, zset. ARGV: '1' for the entries (HGETALL), '0' for their count (ZCARD).
_READ = (
    _NOW
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #expired > 0 then
  for i = 1, #expired, 1000 do
    redis.call('HDEL', KEYS[1], unpack(expired, i, math.min(i + 999, #expired)))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end
if ARGV[1] == '1' then
  return redis.call('HGETALL', KEYS[1])
end
return redis.call('ZCARD', KEYS[2])
"""
)


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


_JOIN_SHA, _LEAVE_SHA, _TOUCH_SHA, _READ_SHA = map(_sha, (_JOIN, _LEAVE, _TOUCH, _READ))


class RedisPresence:
    """Presence shared by every instance through Redis, modelled on Centrifugo.

    Each channel has two keys in one Cluster slot (the channel is their hash tag):

        <prefix>{<channel>}:p    a hash: client id -> info (JSON)
        <prefix>{<channel>}:pz   a sorted set: client id -> expiry (ms, Redis time)

    ``join`` and ``touch`` set the expiry to Redis's now + ``ttl`` and refresh
    both keys' own TTL, so a channel whose every instance died leaves nothing
    behind. ``members`` and ``count`` first drop the expired entries, in the
    same script. Every call is one Lua script through ``hub.scripts``, which
    pipelines the calls made in one loop iteration: ``touch`` sends one per
    channel (per ``TOUCH_CHUNK`` client ids), all in the same iteration.
    Redis failures raise ``RedisUnavailable``.
    """

    def __init__(self, hub: RedisHub, *, prefix: str, ttl: float = 30.0) -> None:
        if ttl < 0.001:
            raise ConfigurationError(f"presence ttl is at least 0.001 s, not {ttl}")
        self.hub = hub
        self.prefix = prefix
        self.ttl = ttl
        self._ttl_ms = math.ceil(ttl * 1000)

    def __repr__(self) -> str:
        return f"<RedisPresence prefix={self.prefix!r} ttl={self.ttl}>"

    def keys(self, channel: str) -> list[str]:
        """The channel's two keys: the hash of infos, the sorted set of expiries."""
        base = f"{self.prefix}{{{channel}}}"
        return [f"{base}:p", f"{base}:pz"]

    async def _eval(self, channel: str, args: list[Any], script: str, sha: str) -> Any:
        return await self.hub.scripts.eval(self.keys(channel), args, script, sha)

    async def join(self, channel: str, client_id: str, info: dict[str, Any]) -> None:
        await self._eval(channel, [self._ttl_ms, client_id, _encode(info)], _JOIN, _JOIN_SHA)

    async def leave(self, channel: str, client_id: str) -> None:
        await self._eval(channel, [client_id], _LEAVE, _LEAVE_SHA)

    async def members(self, channel: str) -> dict[str, dict[str, Any]]:
        flat = await self._eval(channel, ["1"], _READ, _READ_SHA)
        return {_text(flat[i]): json.loads(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def count(self, channel: str) -> int:
        return int(await self._eval(channel, ["0"], _READ, _READ_SHA))

    async def touch(self, entries: Iterable[Entry]) -> list[Entry]:
        by_channel: defaultdict[str, list[str]] = defaultdict(list)
        for channel, client_id in entries:
            by_channel[channel].append(client_id)
        calls = [
            (channel, ids[i : i + TOUCH_CHUNK])
            for channel, ids in by_channel.items()
            for i in range(0, len(ids), TOUCH_CHUNK)
        ]
        # Started together, the calls join the batcher's pipelines in one iteration.
        replies = await asyncio.gather(
            *(self._eval(ch, [self._ttl_ms, *ids], _TOUCH, _TOUCH_SHA) for ch, ids in calls),
            return_exceptions=True,
        )
        for reply in replies:
            if isinstance(reply, BaseException):  # every call has finished: none is left behind
                raise reply
        return [
            (channel, _text(client_id))
            for (channel, _), gone in zip(calls, replies, strict=True)
            for client_id in gone
        ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
