"""FaultProxy forwards TCP and injects latency, blackholes and resets on demand."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest
import redis
import redis.asyncio

from tenfold.testing import FaultProxy, RedisServer


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except ConnectionResetError:
        pass  # the reset test makes the proxy reset us
    finally:
        writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        return await reader.readexactly(len(payload))
    finally:
        writer.close()


async def test_forwards_both_ways(echo_port: int) -> None:
    """Bytes written to the proxy reach the server, and its answer comes back."""
    proxy = FaultProxy("127.0.0.1", echo_port)
    await proxy.start()
    try:
        assert await _roundtrip(proxy.port, b"hello") == b"hello"
    finally:
        await proxy.stop()


async def test_latency_delays_answers(echo_port: int) -> None:
    """Through a proxy with latency, an answer arrives after one sent via a direct proxy."""
    slow, fast = FaultProxy("127.0.0.1", echo_port), FaultProxy("127.0.0.1", echo_port)
    await slow.start()
    await fast.start()
    slow.set_latency(0.2)
    arrived: list[str] = []

    async def ask(name: str, port: int) -> None:
        await _roundtrip(port, name.encode())
        arrived.append(name)

    try:
        await asyncio.gather(ask("slow", slow.port), ask("fast", fast.port))
    finally:
        await slow.stop()
        await fast.stop()
    assert arrived == ["fast", "slow"]


async def test_blackhole_times_out_and_heal_delivers(
    fault_proxy: Callable[..., FaultProxy], redis_server: RedisServer
) -> None:
    """A blackholed client times out; after heal a new client answers and held data flows."""
    proxy = fault_proxy(redis_server.host, redis_server.port)
    url = f"redis://{proxy.address}/0"
    proxy.blackhole()
    stuck = redis.asyncio.Redis.from_url(url, socket_timeout=0.3, socket_connect_timeout=0.3)
    with pytest.raises(redis.TimeoutError):
        await stuck.ping()
    await stuck.aclose()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"PING\r\n")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readline(), 0.3)
    proxy.heal()
    assert await asyncio.wait_for(reader.readline(), 10) == b"+PONG\r\n"
    writer.close()
    healed = redis.asyncio.Redis.from_url(url, socket_timeout=10)
    assert await healed.ping() is True
    await healed.aclose()


async def test_reset_sends_rst_and_new_connections_work(echo_port: int) -> None:
    """reset_connections() aborts live connections with RST; later connections are fine."""
    proxy = FaultProxy("127.0.0.1", echo_port)
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        assert proxy.connections == 1
        proxy.reset_connections()
        with pytest.raises(ConnectionResetError):
            await reader.read(1)  # an orderly close would read b"" instead
        writer.close()
        assert await _roundtrip(proxy.port, b"again") == b"again"
    finally:
        await proxy.stop()


def test_sync_mode_serves_blocking_clients(
    fault_proxy: Callable[..., FaultProxy], redis_server: RedisServer
) -> None:
    """From sync code the fixture's threaded proxy forwards, resets, and forwards again."""
    proxy = fault_proxy(redis_server.host, redis_server.port)
    with redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=5) as conn:
        assert conn.set("via-proxy", "1") is True
        proxy.reset_connections()
        # redis-py retries once on a fresh connection after the reset.
        assert conn.get("via-proxy") == b"1"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(7) == b"+PONG\r\n"
