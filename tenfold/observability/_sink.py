"""Where log lines go: a byte stream, written in batches on the hot path.

Writing and flushing stdout for every access line costs a system call per
request, on the event loop. ``write`` (used for access lines) queues the line
and flushes the queue ``FLUSH_DELAY`` seconds later, or at once when
``MAX_PENDING`` lines are waiting: under load hundreds of lines share one
``write``; at rest a line waits at most ``FLUSH_DELAY``.
Outside a loop (threads, startup, atexit) a line is written at once.

``write_now`` (every other line: fewer, and the ones that matter when a
process dies) writes the queue and the line before returning, so order is
kept and nothing waits on a loop that may be about to close.

When the stream is a pipe, writes are cut at line boundaries under
``PIPE_BUF`` so several worker processes sharing one stdout pipe never
interleave inside a line.
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
import threading
from typing import BinaryIO

__all__ = ["FLUSH_DELAY", "MAX_PENDING", "LineSink"]

FLUSH_DELAY = 0.05
MAX_PENDING = 256
_PIPE_BUF = 4096


class LineSink:
    """Appends newline-terminated lines to a binary stream."""

    __slots__ = ("_lock", "_pending", "_pipe", "_stream", "_timer_loop")

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pending: list[bytes] = []
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pipe = _is_pipe(stream)

    @property
    def stream(self) -> BinaryIO:
        return self._stream

    def write(self, line: bytes) -> None:
        """Queue ``line`` (which must end with a newline) for a batched write."""
        loop = asyncio._get_running_loop()
        pending = self._pending
        pending.append(line)
        if loop is None:
            self.flush()
        elif loop is self._timer_loop:
            if len(pending) >= MAX_PENDING:
                self.flush()
        else:
            # No flush pending on this loop (a loop that closed with a timer
            # still pending must not leave lines stranded).
            self._timer_loop = loop
            loop.call_later(FLUSH_DELAY, self.flush)

    def write_now(self, line: bytes) -> None:
        """Write ``line`` and everything queued before it, before returning."""
        with self._lock:
            self._pending.append(line)
            self._drain()

    def flush(self) -> None:
        """Write out every queued line now."""
        with self._lock:
            self._timer_loop = None
            self._drain()

    def _drain(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        stream = self._stream
        try:
            for chunk in _chunks(lines) if self._pipe else (b"".join(lines),):
                stream.write(chunk)
                stream.flush()
        except (OSError, ValueError):
            # A closed or broken stdout must not take the request down with it;
            # there is nowhere left to report the failure.
            return


def _is_pipe(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


def _chunks(lines: list[bytes]) -> list[bytes]:
    chunks: list[bytes] = []
    batch: list[bytes] = []
    size = 0
    for line in lines:
        if batch and size + len(line) > _PIPE_BUF:
            chunks.append(b"".join(batch))
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        chunks.append(b"".join(batch))
    return chunks
