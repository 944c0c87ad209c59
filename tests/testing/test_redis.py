"""The harness Redis server and Redis Cluster, and the helpers that break them."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio

from tenfold.testing import RedisCluster, RedisServer

pytestmark = pytest.mark.redis


def test_standalone_restarts_on_same_port(redis_server: RedisServer) -> None:
    """A killed or stopped Redis comes back on the same URL and serves commands again."""
    url = redis_server.url
    for breaker in (redis_server.kill, redis_server.stop):
        breaker()
        assert not redis_server.is_running()
        with pytest.raises(redis.ConnectionError), redis_server.client() as conn:
            conn.ping()
        redis_server.start()
        assert redis_server.url == url
        assert redis_server.command("PING") is True


async def test_client_pause_holds_writes_until_unpaused(redis_server: RedisServer) -> None:
    """During CLIENT PAUSE WRITE a SET times out on a client timeout; after unpause it succeeds."""
    conn = redis.asyncio.Redis.from_url(redis_server.url, socket_timeout=0.3)
    try:
        redis_server.client_pause(60_000, mode="write")
        with pytest.raises(redis.TimeoutError):
            await conn.set("k", "v")
        redis_server.client_unpause()
        assert await conn.set("k", "v") is True
    finally:
        await conn.aclose()


def test_client_pause_all_holds_every_command(redis_server: RedisServer) -> None:
    """During CLIENT PAUSE ALL even PING times out; client_unpause() waits the pause out."""
    redis_server.client_pause(2000)
    with pytest.raises(redis.TimeoutError), redis_server.client(socket_timeout=0.2) as conn:
        conn.ping()
    redis_server.client_unpause()
    assert redis_server.command("PING") is True


def test_cluster_has_three_masters_and_spreads_keys(redis_cluster: RedisCluster) -> None:
    """The cluster is ok with 3 masters, and 30 keys land on more than one node."""
    assert len(redis_cluster.nodes) == 3
    assert redis_cluster.startup_nodes == [f"127.0.0.1:{n.port}" for n in redis_cluster.nodes]
    with redis_cluster.client() as client:
        masters = [n for n in client.get_nodes() if n.server_type == "primary"]
        assert len(masters) == 3
        for i in range(30):
            client.set(f"key:{i}", i)
        owners = {client.get_node_from_key(f"key:{i}").port for i in range(30)}
    assert len(owners) > 1
    for node in redis_cluster.nodes:
        info = node.command("CLUSTER", "INFO").decode()
        assert "cluster_state:ok" in info


def test_cluster_recovers_after_a_node_is_killed(redis_cluster: RedisCluster) -> None:
    """A killed cluster node restarts on its port and the cluster returns to ok."""
    node = redis_cluster.nodes[1]
    node.kill()
    node.start()
    redis_cluster.wait_ok()
    with redis_cluster.client() as client:
        assert client.set("after-restart", 1) is True
