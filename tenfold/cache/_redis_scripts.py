"""The Lua scripts of ``RedisBackend``: each runs on one entry's slot, atomically.

Key names are described in ``_redis``; each script's comment lists its KEYS
and ARGV. A lock's value is ``"<fencing token> <owner>"``: ``UNLOCK`` matches
the token (the holder's), ``ABANDON`` the owner (an attempt whose reply was
lost, which never learnt its token).
"""

from __future__ import annotations

import hashlib

__all__ = ["ABANDON", "LOCK", "SET_IF", "UNLOCK", "Script"]


class Script:
    """A script body and its SHA1, for EVALSHA."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.sha = hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()


# KEYS entry, kv, lock, tag... | ARGV value, ttl_ms, key_version, channel, tag_version...
SET_IF = Script("""
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[3]) then return 0 end
for i = 4, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') ~= tonumber(ARGV[i + 1]) then return 0 end
end
if ARGV[2] == '0' then redis.call('SET', KEYS[1], ARGV[1])
else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PUBLISH', ARGV[4], KEYS[1]) end
return 1
""")
# KEYS lock, fence, gone | ARGV ttl_ms, fence_ttl_ms, owner
LOCK = Script("""
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then
  return false
end
local t = redis.call('TIME')
local token = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if token <= last then token = last + 1 end
local s = string.format('%d', token)
redis.call('SET', KEYS[2], s, 'PX', ARGV[2])
redis.call('SET', KEYS[1], s .. ' ' .. ARGV[3], 'PX', ARGV[1])
return token
""")
# KEYS lock, entry | ARGV token, channel
UNLOCK = Script("""
local held = redis.call('GET', KEYS[1])
if not held or string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], KEYS[2])
return 1
""")
# KEYS lock, entry, gone | ARGV owner, channel, ttl_ms
ABANDON = Script("""
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, -#ARGV[1] - 1) == ' ' .. ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], KEYS[2])
  return 1
end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
return 0
""")
