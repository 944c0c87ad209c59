"""The per-request access line, rendered without structlog's machinery.

It is written once per request, so in JSON mode it skips the processor chain
and is assembled from pre-encoded pieces: one orjson call per free-text
field, cached bytes for everything else, and a timestamp whose date and time
part is formatted once a second. The result has the same schema as every
other line (see ``_logging.py``).
"""

from __future__ import annotations

import time

import orjson
from structlog.typing import EventDict

from tenfold.observability import _logging
from tenfold.observability._logging import TIMESTAMPS, scrubbed_json

__all__ = ["write_access"]


def write_access(
    request_id: str | None,
    user_id: str | None,
    method: str,
    route: str,
    path: str,
    status: int,
    seconds: float,
    client: str | None = None,
) -> None:
    """Write the access line of one request, in the schema of every other line.

    ``client`` is the client address (behind trusted proxies, the one they reported).
    """
    if not _logging.state.json:
        event: EventDict = {"event": "request", "logger": "tenfold.access"}
        event.update(request_id=request_id, method=method, route=route, path=path)
        event["client"] = client
        event.update(status=status, duration_ms=round(seconds * 1000.0, 3))
        if user_id is not None:
            event["user_id"] = user_id
        _logging.run_processors(event, "error" if status >= 500 else "info")
        return
    fields = _FIELDS.get((method, route))
    if fields is None:
        fields = _method_and_route(method, route)
    now = time.time()
    second = int(now)
    stamp = TIMESTAMPS
    if second != stamp.second:
        stamp.advance(second)
    try:
        line = b"".join(
            (
                _ERROR_HEAD if status >= 500 else _INFO_HEAD,
                _dumps(request_id),
                fields,
                _dumps(path),
                _NO_CLIENT if client is None else b',"client":' + _dumps(client),
                _STATUS[status] if 100 <= status < 600 else b',"status":%d,"duration_ms":' % status,
                _dumps(int(seconds * 1e6) / 1000.0),
                b"" if user_id is None else b',"user_id":' + _dumps(user_id),
                stamp.prefix,
                _MILLIS[int((now - second) * 1000.0)],
            )
        )
    except TypeError:  # a str orjson refuses (lone surrogate): never fail the request
        event = {"event": "request", "level": "error" if status >= 500 else "info"}
        event.update(logger="tenfold.access", request_id=request_id, method=method)
        event.update(route=route, path=path, client=client, status=status, user_id=user_id)
        event.update(duration_ms=round(seconds * 1000.0, 3), timestamp=TIMESTAMPS.now())
        line = scrubbed_json(event)
    (_logging.state.sink or _logging.state.current_sink()).write(line)


_INFO_HEAD = b'{"event":"request","level":"info","logger":"tenfold.access","request_id":'
_ERROR_HEAD = b'{"event":"request","level":"error","logger":"tenfold.access","request_id":'
_NO_CLIENT = b',"client":null'
_STATUS = [b',"status":%d,"duration_ms":' % code for code in range(600)]
_MILLIS = [b'.%03dZ"}\n' % ms for ms in range(1000)]
# Routes are templates and methods are normalised, so this cache stays small.
_FIELDS: dict[tuple[str, str], bytes] = {}
_MAX_FIELDS = 10_000
_dumps = orjson.dumps


def _method_and_route(method: str, route: str) -> bytes:
    fields = b',"method":' + _dumps(method) + b',"route":' + _dumps(route) + b',"path":'
    if len(_FIELDS) < _MAX_FIELDS:
        _FIELDS[(method, route)] = fields
    return fields
