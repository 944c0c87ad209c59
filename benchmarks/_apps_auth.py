"""The servers ``bench_auth``'s full_stack section loads: an authenticated JSON GET.

``GET /items/{item_id}`` with ``Authorization: Bearer <access token>`` answers
``{"id": item_id, "name": "widget", "user": <the token's subject>}`` to a caller
holding the ``reader`` role, on both sides:

- ``make_tenfold``: ``create_app`` with ``AuthExtension`` (the token verified in
  the authentication slot), the route guarded by ``Depends(require("items:read"))``,
  a per-user rate limit in lease mode over Redis (``TENFOLD_RATELIMIT__KEY=user``)
  and the response cached per user (``cache_response(per_user=True)``). Its
  signing key is the file ``TENFOLD_AUTH__KEYS_FILE`` names; its database the
  SQLite file ``TENFOLD_DB__URL`` names (the auth tables, created at startup).
- ``make_fastapi``: bare FastAPI, a dependency calling ``jwt.decode`` with the
  public key read from the PEM file ``BENCH_PUBLIC_KEY_PEM`` names, then checking
  the role claim.

Each ``make_*`` is a uvicorn ``--factory``; the Redis URL comes from ``BENCH_REDIS_URL``.
Each imports what it serves inside, so neither process loads the other's stack; for
FastAPI to read the parameters' types, this module leaves annotations evaluated (no
``from __future__ import annotations``).
"""

import os
from typing import Any

#: The app's name, hence its tokens' issuer and audience (AuthSettings' defaults).
APP_NAME = "bench-auth"
#: The role every benchmark user holds, and the permission the route requires of it.
ROLE = "reader"
PERMISSION = "items:read"
#: One rule per user, generous enough that the benchmark is never refused.
GENEROUS = "1000000000/minute"


def make_tenfold() -> Any:
    """create_app + AuthExtension; require(), per-user lease rate limit, per-user cache."""
    from fastapi import APIRouter, Depends

    from tenfold import Principal, RedisSettings, Settings, create_app
    from tenfold.auth import AuthExtension, require
    from tenfold.httpcache import cache_response

    router = APIRouter()

    @router.get("/items/{item_id}")
    @cache_response(max_age=60, per_user=True)
    async def item(item_id: int, who: Principal = Depends(require(PERMISSION))) -> dict[str, Any]:
        return {"id": item_id, "name": "widget", "user": who.id}

    limits = {
        "default": [GENEROUS],
        "key": "user",
        "mode": "lease",
        "backend": "redis",
        "fail_open": True,
    }
    settings = Settings.load(
        app={"name": APP_NAME},
        redis=RedisSettings(url=os.environ["BENCH_REDIS_URL"]),
        ratelimit=limits,
    )
    return create_app(
        settings, extensions=[AuthExtension(roles={ROLE: [PERMISSION]})], routers=[router]
    )


def make_fastapi() -> Any:
    """Bare FastAPI: HTTPBearer, then ``jwt.decode`` (EdDSA, audience, issuer) and a role check."""
    from pathlib import Path

    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    public_key = load_pem_public_key(Path(os.environ["BENCH_PUBLIC_KEY_PEM"]).read_bytes())
    bearer = HTTPBearer()

    async def claims(
        credentials: HTTPAuthorizationCredentials = Depends(bearer),
    ) -> dict[str, Any]:
        try:
            decoded: dict[str, Any] = jwt.decode(
                credentials.credentials,
                public_key,  # type: ignore[arg-type]
                algorithms=["EdDSA"],
                audience=APP_NAME,
                issuer=APP_NAME,
            )
        except jwt.InvalidTokenError:
            raise HTTPException(401, "invalid token") from None
        if ROLE not in decoded.get("roles", ()):
            raise HTTPException(403, f"this needs the permission {PERMISSION!r}")
        return decoded

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int, who: dict[str, Any] = Depends(claims)) -> dict[str, Any]:
        return {"id": item_id, "name": "widget", "user": who["sub"]}

    return app
