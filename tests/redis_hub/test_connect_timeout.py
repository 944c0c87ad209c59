"""The Redis connect timeout: a setting that reaches the pool and bounds a connect that hangs."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from tenfold import RedisSettings
from tenfold.redis import RedisHub, RedisUnavailable
from tenfold.testing import RedisCluster


def _pool_connect_timeout(hub: RedisHub) -> float:
    return hub.client.connection_pool.connection_kwargs["socket_connect_timeout"]  # type: ignore[union-attr,no-any-return]


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A loopback port that listens but never accepts, its backlog full: connects hang there."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # listen(0) still queues a connection or two
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_the_connect_timeout_defaults_to_the_command_timeout() -> None:
    """Unset, CONNECT_TIMEOUT is SOCKET_TIMEOUT, on the command pool and the pub/sub client."""
    settings = RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout=0.1)
    hub = RedisHub.from_settings(settings)
    try:
        assert _pool_connect_timeout(hub) == 0.1
        assert hub._pubsub_options["socket_connect_timeout"] == 0.1
    finally:
        await hub.aclose()


async def test_the_connect_timeout_setting_reaches_the_pool(redis_cluster: RedisCluster) -> None:
    """TENFOLD_REDIS__CONNECT_TIMEOUT is the connect timeout of standalone and Cluster pools."""
    standalone = RedisHub.from_settings(
        RedisSettings(url="redis://127.0.0.1:1/0", connect_timeout=0.07)
    )
    cluster = RedisHub.from_settings(
        RedisSettings(cluster_nodes=redis_cluster.startup_nodes, connect_timeout=0.07)
    )
    try:
        assert _pool_connect_timeout(standalone) == 0.07
        assert cluster.client.connection_kwargs["socket_connect_timeout"] == 0.07  # type: ignore[union-attr]
    finally:
        await standalone.aclose()
        await cluster.aclose()


async def test_a_connect_that_hangs_fails_within_the_connect_timeout(full_backlog: int) -> None:
    """A Redis that takes no connections is RedisUnavailable by CONNECT_TIMEOUT, not by the
    (here far longer) socket timeout: the ping fails with a timeout before the guard, which
    only keeps a regression from hanging the suite, could fire."""
    settings = RedisSettings(
        url=f"redis://127.0.0.1:{full_backlog}/0", socket_timeout=120.0, connect_timeout=0.2
    )
    hub = RedisHub.from_settings(settings)
    try:
        with pytest.raises(RedisUnavailable) as caught:
            await asyncio.wait_for(hub.ping(), timeout=60)
        assert "Timeout" in caught.value.message
    finally:
        await hub.aclose()
