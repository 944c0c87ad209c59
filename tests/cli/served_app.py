"""An app that says which worker process answered, for `tenfold run --workers` tests."""

from __future__ import annotations

import os

from fastapi import APIRouter

from tenfold import create_app

router = APIRouter()


@router.get("/hit")
async def hit() -> dict[str, int]:
    return {"pid": os.getpid()}


@router.get("/pid")
async def pid() -> dict[str, int]:
    return {"pid": os.getpid()}


app = create_app(routers=[router])
