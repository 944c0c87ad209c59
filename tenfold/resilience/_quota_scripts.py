"""The Lua scripts of ``RedisUpstreamQuota``: a reservation and a lesson, each atomic.

Keys (one ``{provider}`` hash tag): ``KEYS[1]`` the Retry-After block, then one
hash per window in ``WINDOWS`` order: limit, used, reset (epoch ms), period.
"""

from __future__ import annotations

import hashlib

__all__ = ["LEARN_SCRIPT", "MARGIN_MS", "RESERVE_SCRIPT", "SAME_WINDOW_MS", "WINDOWS", "Script"]

#: Window names, in the order of the window keys (KEYS[2..]) in both scripts.
WINDOWS = ("15m", "daily", "ratelimit")
#: How long a key outlives the end of its window (so a slow clock still finds it).
MARGIN_MS = 60_000
#: Resets closer than this are the same window (the draft's Reset is whole seconds).
SAME_WINDOW_MS = 1_000

# KEYS[1] block, KEYS[2..] window hashes | ARGV[1] now ms (-1: Redis TIME), ARGV[2] margin ms.
# read_window(i) reads window i, rolling a periodic window whose reset passed (a one-off one is
# dropped); state() is the reply's tail: index, limit, used, reset for every known window.
_PRELUDE = """
local now = tonumber(ARGV[1])
if now < 0 then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local margin = tonumber(ARGV[2])
local function int(x) return string.format('%d', x) end
local function ttl(w) return int(w[3] - now + w[4] + margin) end
local function read_window(i)
  local h = redis.call('HMGET', KEYS[i], 'limit', 'used', 'reset', 'period')
  local limit = tonumber(h[1])
  if not limit then return nil end
  local w = {limit, tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4]) or 0}
  if now >= w[3] then
    if w[4] <= 0 then redis.call('DEL', KEYS[i]) return nil end
    w[2] = 0
    w[3] = (math.floor(now / w[4]) + 1) * w[4]
    redis.call('HSET', KEYS[i], 'used', 0, 'reset', int(w[3]))
    redis.call('PEXPIRE', KEYS[i], ttl(w))
  end
  return w
end
local function state(reply)
  for i = 2, #KEYS do
    local w = read_window(i)
    if w then
      for _, v in ipairs({i - 1, w[1], w[2], w[3]}) do reply[#reply + 1] = v end
    end
  end
  return reply
end
"""

# Reply: wait ms (0: reserved), the window that refused, now ms, then state().
_RESERVE = (
    _PRELUDE
    + """
local wait, which = 0, ''
local windows = {}
for i = 2, #KEYS do
  local w = read_window(i)
  if w then
    windows[i] = w
    if w[2] + 1 > w[1] and w[3] - now > wait then wait, which = w[3] - now, tostring(i - 1) end
  end
end
local block = redis.call('PTTL', KEYS[1])
if block > 0 and block >= wait then wait, which = block, 'retry-after' end
if wait == 0 then
  for i, w in pairs(windows) do
    redis.call('HINCRBY', KEYS[i], 'used', 1)
    redis.call('PEXPIRE', KEYS[i], ttl(w))
  end
end
return state({wait, which, now})
"""
)

# ARGV[3] block ms (0: none), ARGV[4] same-window tolerance ms; then per window key: limit
# (-1: not reported), used, period ms (0: one-off), ms until reset (one-off only).
# Reply as _RESERVE's, with wait 0.
_LEARN = (
    _PRELUDE
    + """
for i = 2, #KEYS do
  local base = 4 * (i - 2) + 5
  local limit = tonumber(ARGV[base])
  if limit >= 0 then
    local used, period = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
    local reset = now + tonumber(ARGV[base + 3])
    if period > 0 then reset = (math.floor(now / period) + 1) * period end
    local w, write = read_window(i), true
    if w and math.abs(reset - w[3]) <= tonumber(ARGV[4]) then
      used, reset = math.max(used, w[2]), w[3]
    elseif w and reset < w[3] then
      write = false -- a late answer about a window that has since been replaced
    end
    if write then
      w = {limit, used, reset, period}
      redis.call('HSET', KEYS[i], 'limit', limit, 'used', used, 'reset', int(reset),
        'period', period)
      redis.call('PEXPIRE', KEYS[i], ttl(w))
    end
  end
end
local block = tonumber(ARGV[3])
if block > 0 and redis.call('PTTL', KEYS[1]) < block then
  redis.call('SET', KEYS[1], '1', 'PX', block)
end
return state({0, '', now})
"""
)


class Script:
    """A script body and its SHA-1 (for EVALSHA)."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.sha = hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()


RESERVE_SCRIPT = Script(_RESERVE)
LEARN_SCRIPT = Script(_LEARN)
