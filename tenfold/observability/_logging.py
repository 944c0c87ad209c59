"""Structured logs: one JSON object per line (orjson), or a pretty console.

Logging is process-wide state, so it has exactly one owner here:
``configure_logging`` installs it and ``reset_logging`` undoes all of it (tests
call that). Every line, from structlog or from the stdlib ``logging`` module
(uvicorn, SQLAlchemy, ``warnings``), runs through the same processors, so all
lines share one schema::

    {"event": ..., "level": "info", "logger": ..., "request_id": ...,
     "user_id": ...(when known), "timestamp": "2025-01-01T12:00:00.000001Z", ...}

The per-request access line skips structlog's bound-logger machinery (see
``_access.py``) but produces the same schema.
"""

from __future__ import annotations

import atexit
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tenfold._context import correlation_var, principal_var, request_id_var
from tenfold._settings import ObservabilitySettings
from tenfold.observability._sink import LineSink
from tenfold.observability._tracebacks import format_exception

__all__ = [
    "TIMESTAMPS",
    "configure_logging",
    "flush_logs",
    "get_logger",
    "reset_logging",
    "run_processors",
    "scrubbed_json",
]

_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE

# uvicorn's own access line would duplicate ours. With no handler and no
# propagation, uvicorn sees ``hasHandlers() is False`` and skips it entirely.
_SILENCED = ("uvicorn.access",)
_PROPAGATED = ("uvicorn", "uvicorn.error", "sqlalchemy", "alembic", "asyncio")


class _State:
    """Everything ``configure_logging`` changes, so ``reset_logging`` can undo it."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.configured = False
        self.json = True
        self.level = logging.INFO
        self.sink: LineSink | None = None
        self.processors: list[Processor] = _processors(json=True)
        self.handler: logging.Handler | None = None
        self.saved: list[tuple[logging.Logger, list[logging.Handler], bool, int]] = []
        self.root_level = logging.WARNING

    def current_sink(self) -> LineSink:
        if self.sink is None:
            # Unconfigured: lines still go somewhere sensible, in the JSON schema.
            self.sink = LineSink(sys.stdout.buffer)
        return self.sink


_atexit_registered = False


def configure_logging(
    settings: ObservabilitySettings, *, console: bool, stream: BinaryIO | None = None
) -> None:
    """Install tenfold's logging for this process (replacing any earlier call).

    ``console`` picks the human-readable renderer instead of JSON lines.
    ``stream`` is a binary stream; it defaults to ``sys.stdout.buffer``.
    """
    global _atexit_registered
    reset_logging()
    level = logging.getLevelNamesMapping()[settings.log_level]
    out = stream if stream is not None else sys.stdout.buffer
    state.json = not console
    state.level = level
    state.sink = LineSink(out)
    state.processors = _processors(json=not console, colors=console and _isatty(out))
    structlog.configure(
        processors=state.processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_SinkLogger,
        context_class=dict,
        # Cached loggers would keep a stale configuration across reset_logging().
        cache_logger_on_first_use=False,
    )
    _route_stdlib(level)
    state.configured = True
    if not _atexit_registered:
        atexit.register(flush_logs)
        _atexit_registered = True


def reset_logging() -> None:
    """Undo ``configure_logging``: structlog defaults, stdlib handlers restored."""
    flush_logs()
    if state.handler is not None:
        root = logging.getLogger()
        root.removeHandler(state.handler)
        root.setLevel(state.root_level)
    for logger, handlers, propagate, level in state.saved:
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)
    if state.configured:
        logging.captureWarnings(False)
        structlog.reset_defaults()
    state.clear()


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; ``name`` becomes the ``logger`` field of each line."""
    return structlog.get_logger(name) if name else structlog.get_logger()


def flush_logs() -> None:
    """Write out lines still queued for the end of the current loop turn."""
    if state.sink is not None:
        state.sink.flush()


def scrubbed_json(event: EventDict) -> bytes:
    def scrub(value: Any) -> Any:
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return str(value).encode("utf-8", "replace").decode("utf-8")

    return orjson.dumps({str(k): scrub(v) for k, v in event.items()}, option=_JSON_OPTIONS)


class _Timestamps:
    """ISO 8601 UTC to the millisecond; the date and time part is formatted once a second."""

    __slots__ = ("prefix", "second", "text_prefix")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = b""
        self.text_prefix = ""

    def advance(self, second: int) -> None:
        self.text_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self.prefix = b',"timestamp":"' + self.text_prefix.encode()
        self.second = second

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self.second:
            self.advance(second)
        return f"{self.text_prefix}.{int((now - second) * 1000.0):03d}Z"


TIMESTAMPS = _Timestamps()


def run_processors(event: EventDict, method: str) -> None:
    try:
        rendered: Any = event
        for processor in state.processors:
            rendered = processor(None, method, rendered)
    except structlog.DropEvent:
        return
    _write_rendered(rendered)


def _write_rendered(rendered: bytes | str) -> None:
    if isinstance(rendered, str):
        rendered = rendered.encode("utf-8", "replace") + b"\n"
    state.current_sink().write_now(rendered)


class _SinkLogger:
    """structlog's wrapped logger: hands rendered lines to the current sink."""

    __slots__ = ("name",)

    def __init__(self, name: Any = None, *args: Any) -> None:
        self.name = name if isinstance(name, str) else None

    def msg(self, message: bytes | str) -> None:
        _write_rendered(message)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class _StdlibHandler(logging.Handler):
    """Routes stdlib ``logging`` records through tenfold's processors."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event: EventDict = {"event": record.getMessage(), "logger": record.name}
            if record.exc_info:
                event["exc_info"] = record.exc_info
            if record.stack_info:
                event["stack_info"] = record.stack_info
            run_processors(event, record.levelname.lower())
        except Exception:
            self.handleError(record)


def _route_stdlib(level: int) -> None:
    root = logging.getLogger()
    state.root_level = root.level
    state.handler = _StdlibHandler()
    state.saved = []
    for logger in [root, *(logging.getLogger(n) for n in _PROPAGATED + _SILENCED)]:
        state.saved.append((logger, logger.handlers[:], logger.propagate, logger.level))
        logger.handlers[:] = []
    for name in _SILENCED:
        logging.getLogger(name).propagate = False
    for name in _PROPAGATED:
        logging.getLogger(name).propagate = True
    root.addHandler(state.handler)
    root.setLevel(level)
    logging.captureWarnings(True)


def _processors(*, json: bool, colors: bool = False) -> list[Processor]:
    processors: list[Processor] = [
        _add_context,
        _add_logger_name,
        structlog.processors.add_log_level,
    ]
    if json:
        processors += [
            _add_timestamp,
            structlog.processors.StackInfoRenderer(),
            _format_exc_info,
            _render_json,
        ]
    else:
        processors += [
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.processors.StackInfoRenderer(),
            _format_exc_info,
            _escape_controls,
            structlog.dev.ConsoleRenderer(colors=colors),
        ]
    return processors


# C0 controls, DEL and C1 controls, as visible escapes: a request path carrying ESC
# sequences (clear screen, move the cursor, rewrite earlier lines), NUL or a newline
# (``%0A`` decodes into the path: a forged second line) must not reach a terminal raw.
# A formatted traceback keeps its newlines. JSON lines need nothing: orjson escapes
# every control character.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))}
_TRACEBACK_CONTROLS = {code: text for code, text in _CONTROLS.items() if code != 0x0A}


def _escape_controls(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Escape control characters in every field of a console line."""
    for key, value in event.items():
        if value is None or isinstance(value, int | float | bool):
            continue
        text = value if isinstance(value, str) else str(value)
        escaped = text.translate(_TRACEBACK_CONTROLS if key == "exception" else _CONTROLS)
        if escaped is not text and escaped != text:
            event[key] = escaped
    return event


def _format_exc_info(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """``exc_info`` (True, an exception or a sys.exc_info() tuple) as an ``exception`` text.

    structlog's ``format_exc_info``, but through ``format_exception``: the
    messages of driver errors under a ``DatabaseError`` stay out of the log.
    """
    exc_info = event.pop("exc_info", None)
    if not exc_info:
        return event
    if isinstance(exc_info, BaseException):
        exc: BaseException | None = exc_info
    elif isinstance(exc_info, tuple):
        exc = exc_info[1]
    else:
        exc = sys.exc_info()[1]
    if exc is not None:
        event["exception"] = format_exception(exc)
    return event


def _add_context(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    event.setdefault("request_id", request_id_var.get())
    acting = principal_var.get()
    if acting is not None and acting.principal is not None:
        event.setdefault("user_id", acting.principal.id)
    correlation = correlation_var.get()
    if correlation is not None:
        event.setdefault("correlation_id", correlation)
    return event


def _add_logger_name(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    if "logger" not in event:
        name = getattr(logger, "name", None)
        if name:
            event["logger"] = name
    return event


def _add_timestamp(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    event["timestamp"] = TIMESTAMPS.now()
    return event


def _render_json(logger: WrappedLogger, method: str, event: EventDict) -> bytes:
    try:
        return orjson.dumps(event, default=str, option=_JSON_OPTIONS)
    except TypeError:  # e.g. a lone surrogate in a str: log it mangled, not at all is worse
        return scrubbed_json(event)


def _isatty(stream: BinaryIO) -> bool:
    isatty: Callable[[], bool] | None = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:
        return False


#: The process-wide logging state (``reset_logging`` restores it).
state = _State()
