"""The app the multi-instance realtime tests serve with `tenfold run`, twice, on one Redis.

Clients may publish to ``chat:*`` channels; every channel may be subscribed to.
Its settings come from the environment the tests give each process.
"""

from __future__ import annotations

from fastapi import FastAPI

from tenfold import Principal, create_app
from tenfold.realtime import RealtimeExtension


def chat_only(principal: Principal | None, channel: str) -> bool:
    return channel.startswith("chat:")


def make_app() -> FastAPI:
    return create_app(extensions=[RealtimeExtension(can_publish=chat_only)])
