"""An asyncio TCP proxy that injects network faults between a client and a server.

Point the client at ``proxy.port`` instead of the server's port, then:

* ``set_latency(s)``: every chunk, in each direction, is held *s* seconds
  before it is forwarded (a request/response round trip gains about 2*s);
* ``blackhole()``: connections are still accepted and read, but nothing is
  forwarded either way, so clients hang until their own timeout, as behind a
  dropped route; new connections wait before dialling the server;
* ``reset_connections()``: every live connection is closed with a TCP RST on
  both sides (``SO_LINGER`` 0); new connections work again;
* ``heal()``: no latency, no blackhole; held data flows on.

Two ways to run it. In async code: ``await proxy.start()`` / ``await proxy.stop()``
run it on the current event loop. From sync code (or to keep it independent
of the test's loop): ``proxy.start_sync()`` / ``proxy.stop_sync()`` run it on
a private loop in a daemon thread. The fault methods are plain methods that
may be called from any thread in either mode. The ``fault_proxy`` fixture
uses the thread mode, so it serves sync and async tests alike.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["FaultProxy"]

_CHUNK = 65536
_RST_LINGER = struct.pack("ii", 1, 0)


class _Link:
    """One client connection and its upstream connection (once dialled)."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.aborted = False

    def abort(self) -> None:
        """Close both sockets with RST instead of an orderly FIN."""
        self.aborted = True
        for writer in (self.client, self.upstream):
            if writer is None or writer.transport.is_closing():
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
            writer.transport.abort()


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_host:upstream_port``, with faults on demand."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.host, self.port = listen_host, port
        self.latency = 0.0
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._flowing: asyncio.Event | None = None
        self._blackholed = False

    def __repr__(self) -> str:
        faults = f"latency={self.latency}" + (" blackholed" if self._blackholed else "")
        upstream = f"{self.upstream_host}:{self.upstream_port}"
        return f"<FaultProxy :{self.port} -> {upstream} {faults}>"

    @property
    def address(self) -> str:
        """``host:port`` to give the client."""
        return f"{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """How many client connections are open through the proxy."""
        return len(self._links)

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Listen on the current event loop (no-op if already running in either mode)."""
        if self._server is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._flowing = asyncio.Event()
        if not self._blackholed:
            self._flowing.set()
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and reset every live connection."""
        if self._thread is not None:
            await asyncio.to_thread(self.stop_sync)
            return
        await self._stop()

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self._reset_all()
        await server.wait_closed()

    def start_sync(self, timeout: float = 10) -> FaultProxy:
        """Run the proxy on a private event loop in a daemon thread; returns self."""
        if self._server is not None:
            return self
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"FaultProxy->{self.upstream_port}", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout)
        return self

    def stop_sync(self, timeout: float = 10) -> None:
        """Stop a proxy started with ``start_sync()`` and end its thread."""
        thread, loop = self._thread, self._loop
        if self._server is None and thread is None:
            return
        if thread is None or loop is None:
            raise RuntimeError("stop_sync() is for a proxy started with start_sync()")
        asyncio.run_coroutine_threadsafe(self._stop(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()
        self._thread = None

    # -- faults -------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Hold every chunk *seconds* before forwarding it (0 to turn off)."""
        self.latency = max(0.0, float(seconds))

    def blackhole(self) -> None:
        """Stop forwarding anything; connections stay open and silent."""
        self._blackholed = True
        self._on_loop(self._sync_flowing)

    def reset_connections(self) -> None:
        """Close every live connection with a TCP RST to both client and server."""
        self._on_loop(self._reset_all)

    def heal(self) -> None:
        """Remove latency and blackhole; held data is forwarded."""
        self.latency = 0.0
        self._blackholed = False
        self._on_loop(self._sync_flowing)

    def _sync_flowing(self) -> None:
        if self._flowing is None:
            return
        if self._blackholed:
            self._flowing.clear()
        else:
            self._flowing.set()

    def _on_loop(self, fn: Callable[[], Any]) -> None:
        """Run *fn* on the proxy's loop (asyncio objects are not thread-safe) and wait."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        # A loop that is not running (a test loop between tests) runs nothing we hand it.
        if on_loop or not loop.is_running():
            fn()
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def call() -> None:
            fn()
            done.set_result(None)

        loop.call_soon_threadsafe(call)
        done.result(timeout=10)

    def _reset_all(self) -> None:
        links, self._links = self._links, set()
        for link in links:
            link.abort()
            if link.task is not None:
                link.task.cancel()

    # -- forwarding ---------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        link.task = asyncio.current_task()
        self._links.add(link)
        try:
            await self._forward(link, reader)
        except asyncio.CancelledError:
            if not link.aborted:
                raise
            # reset_connections() or stop() cancelled us after closing both sides.
        finally:
            self._links.discard(link)
            for w in (writer, link.upstream):
                if w is not None:
                    w.close()

    async def _forward(self, link: _Link, reader: asyncio.StreamReader) -> None:
        assert self._flowing is not None
        await self._flowing.wait()
        try:
            up_reader, link.upstream = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            link.abort()  # the server refused: the client sees a reset, as without us
            return
        try:
            async with asyncio.TaskGroup() as pipes:
                pipes.create_task(self._pipe(reader, link.upstream))
                pipes.create_task(self._pipe(up_reader, link.client))
        except* OSError:
            link.abort()  # one side reset: pass the reset on to the other side

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        while data := await reader.read(_CHUNK):
            if self.latency:
                await asyncio.sleep(self.latency)
            await self._flowing.wait()  # after the delay, so a blackhole set meanwhile holds it
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof() and not writer.transport.is_closing():
            writer.write_eof()  # pass on the half-close; the other direction may still flow
