"""Code examples in docs/ run as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

from tenfold import Platform, Settings, create_app
from tenfold.testing import app_client

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _python_blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", (DOCS / page).read_text(), re.DOTALL | re.M)


def _module(name: str, source: str) -> dict[str, Any]:
    """Run ``source`` as the module ``name`` (SQLAlchemy resolves annotations through it)."""
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec", dont_inherit=True), module.__dict__)
    return module.__dict__


async def test_the_data_layer_example_serves_notes(embedded_settings: Settings) -> None:
    """db.md's opening example, models included, writes a note and reads it back."""
    namespace = _module("db_md_example", _python_blocks("db.md")[0])

    async def create_tables(platform: Platform) -> None:
        async with platform.db.engine.begin() as conn:
            await conn.run_sync(namespace["Base"].metadata.create_all)

    app = create_app(embedded_settings, routers=[namespace["router"]], on_startup=[create_tables])
    async with app_client(app) as client:
        made = await client.post("/notes", json={"text": "hello"})
        assert made.status_code == 200, made.text
        note = made.json()
        assert (await client.get(f"/notes/{note['id']}")).json() == note
        missing = await client.get("/notes/999")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
