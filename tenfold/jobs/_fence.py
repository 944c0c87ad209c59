"""Refusing a deposed beat leader's duplicate runs in the worker.

``tenfold beat`` sends each due run with three headers: its entry's name, the
due time, and the sending tenure's fencing token (``LeaderLease``). Before a
task sent that way runs, the worker records the run in Redis, in one Lua
script per message:

    {tf:beat:<app>:<entry>}:due:<ms>   the message id that ran this due time
    {tf:beat:<app>:<entry>}:token      the highest token that ran the entry

A message for a due time another message already ran (``duplicate``), or
whose token is below the entry's highest (``stale``: a deposed leader), is
acknowledged without running. The same message delivered again (a redelivery,
a retry) runs: it is the run that was admitted. Both keys expire after
TENFOLD_JOBS__VISIBILITY_TIMEOUT; a message without the three headers (not
sent by beat) is not looked at.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tenfold.observability import get_logger
from tenfold.redis import RedisUnavailable

if TYPE_CHECKING:
    from tenfold.jobs._jobs import Jobs
    from tenfold.redis import RedisHub

__all__ = ["DUE_HEADER", "ENTRY_HEADER", "TOKEN_HEADER", "BeatRun", "Fence", "admitted"]

_log = get_logger("tenfold.jobs")

#: The message header holding the sending beat's fencing token.
TOKEN_HEADER = "tenfold_beat_token"
#: The due time the message was sent for, seconds since the epoch.
DUE_HEADER = "tenfold_beat_due"
#: The name of the periodic entry.
ENTRY_HEADER = "tenfold_beat_entry"

Verdict = Literal["run", "duplicate", "stale"]

# KEYS: the due time's key, the entry's highest token. ARGV: token, message id, ttl (ms).
_ADMIT = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[2] then
  return 'run'
end
local token = tonumber(ARGV[1])
local highest = tonumber(redis.call('GET', KEYS[2]))
if highest and token < highest then
  return 'stale'
end
if holder then
  return 'duplicate'
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if not highest or token > highest then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
end
return 'run'
"""
_ADMIT_SHA = hashlib.sha1(_ADMIT.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class BeatRun:
    """One run beat sent: entry ``entry`` due at ``due``, by the tenure of ``token``."""

    entry: str
    due: float
    token: int

    def headers(self) -> dict[str, Any]:
        """The message headers that carry this run to the worker."""
        return {TOKEN_HEADER: self.token, DUE_HEADER: self.due, ENTRY_HEADER: self.entry}

    @classmethod
    def of(cls, request: Any) -> BeatRun | None:
        """The run a Celery ``request`` carries; None when it lacks a well-formed header."""
        entry, due, token = (request.get(h) for h in (ENTRY_HEADER, DUE_HEADER, TOKEN_HEADER))
        if not isinstance(entry, str) or not entry or isinstance(token, bool):
            return None
        if not isinstance(token, int) or not isinstance(due, int | float):
            return None
        if isinstance(due, bool) or not math.isfinite(due):
            return None
        return cls(entry, float(due), token)


class Fence:
    """Admits each beat run once, in Redis ``hub``, for the app named ``app``.

    ``ttl`` (seconds) is how long a run and an entry's highest token are kept.
    """

    def __init__(self, hub: RedisHub, app: str, *, ttl: float) -> None:
        self.hub = hub
        self.app = app
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"<Fence app={self.app!r} ttl={self.ttl}>"

    def keys(self, run: BeatRun) -> list[str]:
        """The due time's key and the entry's highest-token key (one Cluster slot)."""
        base = f"{{tf:beat:{self.app}:{run.entry}}}"
        return [f"{base}:due:{round(run.due * 1000)}", f"{base}:token"]

    async def admit(self, run: BeatRun, message_id: str) -> Verdict:
        """Whether message ``message_id`` may run ``run``; records it when it may.

        ``RedisUnavailable`` if Redis fails.
        """
        args = [run.token, message_id, max(1, int(self.ttl * 1000))]
        reply = await self.hub.scripts.eval(self.keys(run), args, _ADMIT, _ADMIT_SHA)
        verdict = reply.decode() if isinstance(reply, bytes) else str(reply)
        return verdict  # type: ignore[return-value]


def admitted(jobs: Jobs, request: Any) -> bool:
    """Whether the task of Celery ``request`` may run: False for a refused beat duplicate.

    Called in the worker before each task. A message beat did not send runs
    without a look at Redis. When the worker has no Redis, or Redis fails,
    the run goes ahead (tasks run at least once) and a warning is logged.
    """
    run = BeatRun.of(request)
    if run is None:
        return True
    platform = jobs.runtime.platform
    hub = platform.redis if platform is not None else None
    if platform is None or hub is None:
        _log.warning("beat_fence_unavailable", entry=run.entry, reason="no TENFOLD_REDIS__URL")
        return True
    fence = Fence(hub, platform.settings.app.name, ttl=jobs.settings.visibility_timeout)
    try:
        verdict = jobs.runtime.run(fence.admit(run, str(request.id)))
    except RedisUnavailable as exc:
        _log.warning("beat_fence_unavailable", entry=run.entry, error=type(exc).__name__)
        return True
    if verdict == "run":
        return True
    _log.warning(
        "beat_duplicate_refused",
        entry=run.entry,
        due=run.due,
        token=run.token,
        reason=verdict,
        message_id=request.id,
    )
    return False
