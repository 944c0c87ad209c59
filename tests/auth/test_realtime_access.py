"""Realtime and tasks decide with the auth extension's rules: tokens and channel grants."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tenfold import CoreSettings, Forbidden, Principal, Settings, Unauthorized, create_app
from tenfold._context import set_principal
from tenfold.auth import AccessTokens, AuthExtension, AuthSettings, Grants, Users
from tenfold.auth._rbac import Access
from tenfold.realtime import RealtimeExtension, RealtimeSettings
from tenfold.testing import serve_asgi

FAST_HASH = {"password_time_cost": 1, "password_memory_cost": 8, "password_parallelism": 1}
ROLES = {"viewer": ["tournaments:watch"], "admin": ["*"]}
_ids = itertools.count(1)


def settings(tmp_path: Path) -> CoreSettings:
    composed = CoreSettings.compose(
        [*Settings.sections.items(), ("auth", AuthSettings), ("realtime", RealtimeSettings)]
    )
    return composed.load(
        app={"name": "rtauth"},
        db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"},
        auth=FAST_HASH,
    )


async def ask(ws: ClientConnection, method: str, params: dict[str, Any]) -> dict[str, Any]:
    request_id = next(_ids)
    await ws.send(orjson.dumps({"id": request_id, method: params}).decode())
    while True:
        frame = orjson.loads(await ws.recv())
        if frame.get("id") == request_id:
            return frame


async def test_channel_grants_and_connect_tokens(tmp_path: Path) -> None:
    """A role granted on ``tournament:1`` lets its holder watch that channel only; the
    connect frame's token is verified by the app's authenticator; a bad one is refused."""
    auth = AuthExtension(roles=ROLES)
    realtime = RealtimeExtension(can_subscribe=auth.channel_permission("tournaments:watch"))
    app = create_app(settings(tmp_path), extensions=[auth, realtime], configure_logs=False)
    async with serve_asgi(app) as base:
        platform = app.state.tenfold
        ann = await platform.get(Users).create("ann", "a long enough password")
        await platform.get(Grants).grant(ann.id, "viewer", "tournament:1")
        token = platform.get(AccessTokens).issue(ann.principal())
        url = base.replace("http://", "ws://") + "/realtime"
        async with connect(url, open_timeout=5) as ws:
            connected = await ask(ws, "connect", {"token": token})
            assert connected["result"]["user"] == ann.id
            assert "result" in await ask(ws, "subscribe", {"channel": "tournament:1"})
            refused = await ask(ws, "subscribe", {"channel": "tournament:2"})
            assert refused["error"]["code"] == 403
        headers = {"Authorization": f"Bearer {token}"}  # the handshake's header works too
        async with connect(url, additional_headers=headers, open_timeout=5) as ws:
            assert "result" in await ask(ws, "subscribe", {"channel": "tournament:1"})
        async with connect(url, open_timeout=5) as ws:
            anonymous = await ask(ws, "subscribe", {"channel": "tournament:1"})
            assert anonymous["error"]["code"] == 403
        async with connect(url, open_timeout=5) as ws:
            bad = await ask(ws, "connect", {"token": token[:-4] + "AAAA"})
            assert bad["error"]["code"] == 401


async def test_a_task_checks_its_restored_principal(tmp_path: Path) -> None:
    """``Access.check`` uses the current principal: in a task, the enqueuer's."""
    app = create_app(
        settings(tmp_path), extensions=[AuthExtension(roles=ROLES)], configure_logs=False
    )
    async with app.router.lifespan_context(app):
        access = app.state.tenfold.get(Access)
        with pytest.raises(Unauthorized):
            await access.check("tournaments:watch")
        set_principal(Principal("u1", roles=["viewer"]))
        assert (await access.check("tournaments:watch")).id == "u1"
        with pytest.raises(Forbidden):
            await access.check("tournaments:delete")
