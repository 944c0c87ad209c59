"""tenfold's side of bench_realtime: an app with the realtime extension, on Redis.

The benchmark starts it as ``benchmarks._realtime_tenfold:make_app`` under
uvicorn (one worker per process, as the peer's), configured through the
environment: ``TENFOLD_REDIS__URL``, ``TENFOLD_REALTIME__BATCH_WINDOW``, and
limits opened up for a load generator that holds a thousand connections from
one address. Per-message deflate is off, as ``tenfold run`` serves it.
"""

from __future__ import annotations

from fastapi import FastAPI

from tenfold import create_app
from tenfold.realtime import RealtimeExtension

__all__ = ["APP_NAME", "ENV", "make_app"]

APP_NAME = "bench-realtime"

#: The servers' environment beside TENFOLD_REDIS__URL and the batch window.
ENV = {
    "TENFOLD_APP__NAME": APP_NAME,
    # Every load connection comes from 127.0.0.1: no per-address cap, no message rate.
    "TENFOLD_REALTIME__MAX_CONNECTIONS_PER_IP": "0",
    "TENFOLD_REALTIME__MESSAGES_PER_MINUTE": "0",
    # The load clients do not ping; a connections run holds them idle for a while.
    "TENFOLD_REALTIME__IDLE_TIMEOUT": "3600",
    # 1,000 updates a second into one channel, unbatched: room for a second of them.
    "TENFOLD_REALTIME__SEND_QUEUE": "2048",
    "TENFOLD_OBSERVABILITY__LOG_LEVEL": "WARNING",
}


def make_app() -> FastAPI:
    """The app as uvicorn's ``--factory`` loads it."""
    return create_app(extensions=[RealtimeExtension()])
