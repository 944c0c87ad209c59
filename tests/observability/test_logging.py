"""Logging: one JSON schema for structlog and stdlib lines, with the request context."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import warnings

import orjson
import pytest
import structlog

from tenfold import ContextSnapshot, ObservabilitySettings, Principal, restore
from tenfold.observability import configure_logging, flush_logs, get_logger, reset_logging
from tenfold.observability._sink import FLUSH_DELAY, MAX_PENDING, LineSink


def _in_request(request_id: str, user_id: str | None = None):
    return restore(ContextSnapshot(request_id, Principal.of(user_id)))


def test_structlog_lines_carry_the_context(log_lines) -> None:
    """A structlog line has event, level, logger, timestamp, request_id and user_id."""
    with _in_request("r-1", "u-1"):
        get_logger("tenfold.test").info("thing_happened", size=3)
    get_logger("tenfold.test").info("outside")
    inside, outside = log_lines()
    assert inside["event"] == "thing_happened"
    assert inside["level"] == "info"
    assert inside["logger"] == "tenfold.test"
    assert inside["request_id"] == "r-1"
    assert inside["user_id"] == "u-1"
    assert inside["size"] == 3
    assert inside["timestamp"].endswith("Z")
    assert outside["request_id"] is None
    assert "user_id" not in outside


def test_stdlib_records_use_the_same_renderer(log_lines) -> None:
    """uvicorn's stdlib records and Python warnings come out as the same JSON lines."""
    with _in_request("r-2"):
        logging.getLogger("uvicorn.error").warning("worker %s stalled", 3)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("SAWarning: something odd", UserWarning, stacklevel=1)
    uvicorn_line, warning_line = log_lines()
    assert uvicorn_line["event"] == "worker 3 stalled"
    assert uvicorn_line["logger"] == "uvicorn.error"
    assert uvicorn_line["level"] == "warning"
    assert uvicorn_line["request_id"] == "r-2"
    assert warning_line["logger"] == "py.warnings"
    assert "something odd" in warning_line["event"]


def test_exceptions_are_rendered_as_text(log_lines) -> None:
    """exc_info on a line becomes an 'exception' field with the traceback."""
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        get_logger("tenfold.test").error("failed", exc_info=exc)
    (line,) = log_lines()
    assert line["level"] == "error"
    assert "Traceback" in line["exception"]
    assert "ValueError: bad value" in line["exception"]


def test_driver_messages_under_a_database_error_are_withheld(log_lines) -> None:
    """A DatabaseError's traceback shows its causes' frames and types, not their messages."""
    from tenfold import DatabaseError

    quoted = "Failing row contains (7, secret-row-value)"  # a line no traceback shows
    try:
        try:
            raise LookupError(quoted)
        except LookupError as driver_error:
            raise DatabaseError("the primary database refused the statement") from driver_error
    except DatabaseError as exc:
        get_logger("tenfold.test").error("failed", exc_info=exc)
    (line,) = log_lines()
    assert "secret-row-value" not in line["exception"]
    assert "builtins.LookupError: (message withheld" in line["exception"]
    assert "DatabaseError: the primary database refused the statement" in line["exception"]
    assert line["exception"].count("Traceback (most recent call last)") == 2


def test_uvicorn_access_log_is_silenced() -> None:
    """uvicorn's own access logger has no handler, so uvicorn skips its duplicate line."""
    # Configured here, not in a fixture: pytest attaches its capture handler to
    # non-propagating loggers when each test phase starts.
    configure_logging(ObservabilitySettings(), console=False, stream=io.BytesIO())
    assert not logging.getLogger("uvicorn.access").hasHandlers()


def test_level_filters_lines() -> None:
    """Below the configured level nothing is written, from structlog or stdlib."""
    buffer = io.BytesIO()
    configure_logging(ObservabilitySettings(log_level="WARNING"), console=False, stream=buffer)
    try:
        get_logger("t").info("quiet")
        logging.getLogger("uvicorn.error").info("quiet too")
        get_logger("t").warning("loud")
        flush_logs()
    finally:
        reset_logging()
    assert [orjson.loads(x)["event"] for x in buffer.getvalue().splitlines()] == ["loud"]


def test_console_mode_is_human_readable() -> None:
    """console=True renders key=value text rather than JSON."""
    buffer = io.BytesIO()
    configure_logging(ObservabilitySettings(), console=True, stream=buffer)
    try:
        get_logger("t").info("hello_console", answer=42)
        flush_logs()
    finally:
        reset_logging()
    text = buffer.getvalue().decode()
    assert "hello_console" in text
    assert "answer=42" in text
    assert not text.startswith("{")


def test_reset_restores_the_previous_state() -> None:
    """reset_logging puts back the root handlers and structlog's defaults."""
    root = logging.getLogger()
    before = list(root.handlers)
    configure_logging(ObservabilitySettings(), console=False, stream=io.BytesIO())
    assert root.handlers != before
    reset_logging()
    assert root.handlers == before
    assert not structlog.is_configured()


class _Recorder:
    """A binary stream that records each write; optionally claims to be a pipe."""

    def __init__(self, fileno: int | None = None) -> None:
        self.writes: list[bytes] = []
        self._fileno = fileno

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def fileno(self) -> int:
        if self._fileno is None:
            raise io.UnsupportedOperation("no fileno")
        return self._fileno


def _lines(n: int) -> list[bytes]:
    return [orjson.dumps({"n": i, "pad": "x" * 100}) + b"\n" for i in range(n)]


async def test_access_lines_are_batched_until_the_flush() -> None:
    """Lines written inside the loop wait for one batched write (delay or flush)."""
    recorder = _Recorder()
    sink = LineSink(recorder)
    lines = _lines(10)
    for line in lines:
        sink.write(line)
    assert recorder.writes == []
    await asyncio.sleep(FLUSH_DELAY * 2)
    assert recorder.writes == [b"".join(lines)]


async def test_a_full_queue_is_written_at_once() -> None:
    """Reaching MAX_PENDING queued lines writes them without waiting for the timer."""
    recorder = _Recorder()
    sink = LineSink(recorder)
    for line in _lines(MAX_PENDING):
        sink.write(line)
    assert len(recorder.writes) == 1


async def test_write_now_keeps_the_order() -> None:
    """An immediate line is written after the lines queued before it."""
    recorder = _Recorder()
    sink = LineSink(recorder)
    sink.write(b"queued\n")
    sink.write_now(b"urgent\n")
    assert b"".join(recorder.writes) == b"queued\nurgent\n"


async def test_pipe_writes_stay_under_pipe_buf() -> None:
    """Into a pipe, batches are cut at line boundaries under PIPE_BUF (no interleaving)."""
    read_end, write_end = os.pipe()
    try:
        recorder = _Recorder(fileno=write_end)
        sink = LineSink(recorder)
        lines = _lines(200)
        for line in lines:
            sink.write(line)
        sink.flush()
    finally:
        os.close(read_end)
        os.close(write_end)
    assert b"".join(recorder.writes) == b"".join(lines)
    assert len(recorder.writes) > 1
    assert all(len(w) <= 4096 and w.endswith(b"\n") for w in recorder.writes)


def test_outside_a_loop_lines_are_written_at_once() -> None:
    """Without a running event loop a line is written and flushed immediately."""
    stream = io.BytesIO()
    LineSink(stream).write(b"now\n")
    assert stream.getvalue() == b"now\n"


@pytest.fixture(autouse=True)
def _no_leftover_configuration():
    yield
    reset_logging()


def test_console_lines_escape_control_characters() -> None:
    """ESC, NUL and newlines from a request path reach the console escaped, never raw."""
    buffer = io.BytesIO()
    configure_logging(ObservabilitySettings(), console=True, stream=buffer)
    try:
        get_logger("t").info("request", path="/a\x1b[2J\x00b\nforged=line", raw=b"\x1b")
        try:
            raise ValueError("bad\x1b[31m")
        except ValueError:
            get_logger("t").exception("failed")
        flush_logs()
    finally:
        reset_logging()
    text = buffer.getvalue()
    assert b"\x1b" not in text
    assert b"\x00" not in text
    assert b"forged=line" in text
    assert b"\nforged=line" not in text  # the newline is escaped: one line, not two
    assert b"x1b[2J" in text  # shown, escaped
    assert b"Traceback (most recent call last):\n" in text  # a traceback keeps its lines


def test_json_lines_escape_control_characters(log_lines) -> None:
    """JSON lines carry control characters escaped by the encoder, never raw."""
    get_logger("t").info("request", path="/a\x1b[2J\x00b\nforged")
    (line,) = log_lines()
    assert line["path"] == "/a\x1b[2J\x00b\nforged"  # exactly what was logged, decoded
