"""Key stores for handlers whose side effects are not in the database.

``IdempotencyStore`` is the port; ``MemoryStore`` (tests, one process) and
``RedisStore`` implement it. A key is first *reserved* (in flight, for a
lease), then *completed* with the response, or *released* when the handler
raised. A reservation whose process died expires with its lease, so it blocks
retries for at most ``lease`` seconds. Unlike ``IdempotentSession`` these
stores cannot commit a response together with a side effect: a crash between
the side effect and ``complete`` lets the retry run the handler again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tenfold._errors import DependencyUnavailable
from tenfold.idempotency._errors import IdempotencyKeyInFlight, IdempotencyKeyMismatch
from tenfold.idempotency._response import StoredResponse

__all__ = ["IdempotencyStore", "MemoryStore", "RedisStore"]


class IdempotencyStore(Protocol):
    """Where reservations and stored responses live, keyed by (scope, key)."""

    async def reserve(
        self, scope: str, key: str, fingerprint: str, lease: float
    ) -> StoredResponse | None:
        """Reserve the key and return None, or return the stored response to replay.

        Raises ``IdempotencyKeyInFlight`` while another reservation holds it and
        ``IdempotencyKeyMismatch`` when it was used with another fingerprint.
        """
        ...

    async def complete(
        self, scope: str, key: str, fingerprint: str, response: StoredResponse, ttl: float
    ) -> None:
        """Replace the reservation with ``response``, kept for ``ttl`` seconds."""
        ...

    async def release(self, scope: str, key: str, fingerprint: str) -> None:
        """Drop this fingerprint's reservation (never a stored response) so a retry runs."""
        ...


def _encode(fingerprint: str, response: StoredResponse | None) -> str:
    if response is None:
        return json.dumps({"fp": fingerprint})
    body = response.body.decode("latin-1")
    record = {"fp": fingerprint, "s": response.status, "h": response.headers, "b": body}
    if response.consistency_token is not None:
        record["ct"] = response.consistency_token
    return json.dumps(record)


def _decode(raw: str | bytes, fingerprint: str) -> StoredResponse | None:
    """The stored response; raises for a reservation or another fingerprint."""
    record = json.loads(raw)
    if record["fp"] != fingerprint:
        raise IdempotencyKeyMismatch("this key was used for a different request")
    if "s" not in record:
        raise IdempotencyKeyInFlight("a request with this key is still being processed")
    headers = tuple((str(name), str(value)) for name, value in record["h"])
    token = record.get("ct")
    token = token if isinstance(token, int) and token >= 0 else None
    return StoredResponse(int(record["s"]), headers, record["b"].encode("latin-1"), token)


class MemoryStore:
    """One process's dict; ``clock`` (seconds) is injectable so tests control expiry."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._records: dict[tuple[str, str], tuple[float, str]] = {}

    async def reserve(
        self, scope: str, key: str, fingerprint: str, lease: float
    ) -> StoredResponse | None:
        now = self._clock()
        found = self._records.get((scope, key))
        if found is not None and found[0] > now:
            return _decode(found[1], fingerprint)
        self._records[(scope, key)] = (now + lease, _encode(fingerprint, None))
        return None

    async def complete(
        self, scope: str, key: str, fingerprint: str, response: StoredResponse, ttl: float
    ) -> None:
        self._records[(scope, key)] = (self._clock() + ttl, _encode(fingerprint, response))

    async def release(self, scope: str, key: str, fingerprint: str) -> None:
        found = self._records.get((scope, key))
        if found is not None and found[1] == _encode(fingerprint, None):
            del self._records[(scope, key)]


# KEYS record | ARGV reservation, lease_ms. Returns nil when reserved, else the record.
_RESERVE = """
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# KEYS record | ARGV reservation. Only the reservation goes; a completed response stays.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStore:
    """Records at ``<prefix>{<scope>}:<key>`` with a TTL (lease, then ``ttl``)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "tf:idem:") -> None:
        self._client = client
        self._prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    def _name(self, scope: str, key: str) -> str:
        return f"{self._prefix}{{{scope}}}:{key}"

    async def reserve(
        self, scope: str, key: str, fingerprint: str, lease: float
    ) -> StoredResponse | None:
        reservation = _encode(fingerprint, None)
        try:
            found = await self._reserve(
                keys=[self._name(scope, key)], args=[reservation, max(1, int(lease * 1000))]
            )
        except RedisError as exc:
            raise DependencyUnavailable(dependency="redis") from exc
        return None if found is None else _decode(found, fingerprint)

    async def complete(
        self, scope: str, key: str, fingerprint: str, response: StoredResponse, ttl: float
    ) -> None:
        record = _encode(fingerprint, response)
        try:
            await self._client.set(self._name(scope, key), record, px=max(1, int(ttl * 1000)))
        except RedisError as exc:
            raise DependencyUnavailable(dependency="redis") from exc

    async def release(self, scope: str, key: str, fingerprint: str) -> None:
        try:
            await self._release(keys=[self._name(scope, key)], args=[_encode(fingerprint, None)])
        except RedisError as exc:
            raise DependencyUnavailable(dependency="redis") from exc
