"""How tenfold talks to Redis: one way to build a client, one error, one in-flight bound.

Every command connection shares the same socket timeouts and one immediate
retry, only when a pooled connection broke (a socket a restarted Redis
closed), never on a timeout, which would double the time a slow Redis costs a
request. Cluster hash tags are read one way. A driver failure surfaces as
``RedisUnavailable`` whose message names the command and the error class but
never the server's address (that stays on ``__cause__``, for the logs).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from tenfold._errors import DependencyUnavailable, TenfoldError
from tenfold.web import Problem, ProblemEntry, retry_after_header

__all__ = [
    "PROBLEMS",
    "REDIS_ERRORS",
    "RETRY_ONCE",
    "RedisUnavailable",
    "Slots",
    "cluster_client",
    "cluster_seeds",
    "connection_options",
    "hash_tag",
    "standalone_client",
    "unavailable",
]


class RedisUnavailable(DependencyUnavailable):
    """A Redis command failed, timed out or found no free connection."""

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(
            message or "redis is unavailable", dependency="redis", retry_after=retry_after
        )


#: How a ``RedisUnavailable`` that reaches a client is answered (``tenfold.web.ProblemRegistry``).
PROBLEMS: dict[type[TenfoldError], ProblemEntry] = {
    RedisUnavailable: Problem(
        503,
        "Service Unavailable",
        type="https://tenfold.dev/problems/redis-unavailable",
        detail="A service this request needs is unavailable. Retry shortly.",
        headers=retry_after_header(1.0),
    )
}

#: What a redis-py call raises when Redis is unreachable, slow or refusing (and the bound).
REDIS_ERRORS = (RedisError, RedisClusterException, OSError, RedisUnavailable)
#: One retry, at once, only when the connection broke (a pooled socket a restarted Redis
#: closed); never on a timeout, which would double the time a slow Redis costs a request.
RETRY_ONCE = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def unavailable(what: str, exc: BaseException) -> RedisUnavailable:
    """A new ``RedisUnavailable`` for ``what`` failing with ``exc`` (set as its cause)."""
    if isinstance(exc, RedisUnavailable):
        error = RedisUnavailable(exc.message)
    else:
        # The class only: the driver's text names the server's host and port.
        error = RedisUnavailable(f"redis {what} failed ({type(exc).__name__})")
    error.__cause__ = exc
    return error


def connection_options(
    socket_timeout: float, connect_timeout: float, max_connections: int
) -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url`` / ``RedisCluster``."""
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "max_connections": max_connections,
        "retry": RETRY_ONCE,
    }


def standalone_client(
    url: str, socket_timeout: float, connect_timeout: float, max_connections: int
) -> aioredis.Redis:
    """A client of the standalone server at ``url`` with the shared connection options."""
    return aioredis.Redis.from_url(
        url, **connection_options(socket_timeout, connect_timeout, max_connections)
    )


def cluster_client(
    nodes: Sequence[str],
    socket_timeout: float,
    connect_timeout: float,
    max_connections: int,
    client_name: str | None = None,
) -> RedisCluster:
    """A client of the Cluster reachable through ``nodes`` (``host:port``), same options."""
    options = connection_options(socket_timeout, connect_timeout, max_connections)
    if client_name is not None:
        options["client_name"] = client_name
    return RedisCluster(startup_nodes=cluster_seeds(nodes), **options)


def cluster_seeds(nodes: Sequence[str]) -> list[ClusterNode]:
    """``["host:port", ...]`` as Cluster startup nodes."""
    return [ClusterNode(h, int(p)) for h, _, p in (n.rpartition(":") for n in nodes)]


def hash_tag(name: str) -> str | None:
    """The ``{...}`` hash tag Redis Cluster hashes for ``name``, or ``None`` if it has none."""
    start = name.find("{")
    if start == -1:
        return None
    end = name.find("}", start + 1)
    if end <= start + 1:
        return None
    return name[start + 1 : end]


class Slots:
    """A counting bound with a sync fast path: ``take()`` costs no await while slots are free.

    It bounds the commands a client has in flight. redis-py's
    ``BlockingConnectionPool`` does the same job with a Condition and a timeout
    per command, ~13 µs, a fifth of a loopback GET.
    """

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.free = size
        self.timeout = timeout
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def __repr__(self) -> str:
        return f"<Slots {self.free}/{self.size} free, {len(self._waiters)} waiting>"

    def take(self) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def wait(self, what: str) -> None:
        """Wait for a slot handed over by ``give()``, at most ``timeout`` seconds."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await asyncio.wait_for(future, self.timeout)
        except BaseException as exc:
            if future.done() and not future.cancelled():
                self.give()  # a slot reached us just as we gave up: pass it on
            elif future in self._waiters:
                self._waiters.remove(future)
            if isinstance(exc, TimeoutError):
                raise RedisUnavailable(
                    f"redis {what}: no free connection within {self.timeout} s"
                ) from exc
            raise

    def give(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot passes straight to this waiter
                return
        self.free += 1
