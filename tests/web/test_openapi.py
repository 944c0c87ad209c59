"""The OpenAPI document describes the problem+json responses a tenfold app really gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter
from pydantic import BaseModel

from tenfold import Build, Extension, Settings, create_app
from tenfold.testing import app_client

PROBLEM = "application/problem+json"


class ItemIn(BaseModel):
    name: str


def _app(tmp_path: Path, **options: Any) -> Any:
    router = APIRouter()

    @router.post("/items", status_code=201)
    async def add(item: ItemIn) -> ItemIn:
        return item

    @router.get("/items/{item_id}", responses={404: {"description": "No such item."}})
    async def get(item_id: int) -> ItemIn:
        return ItemIn(name=str(item_id))

    settings = Settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})  # type: ignore[arg-type]
    return create_app(settings, routers=[router], configure_logs=False, **options)


def _schema(response: dict[str, Any]) -> Any:
    return response["content"][PROBLEM]["schema"]


async def test_a_422_is_documented_as_the_problem_it_is(tmp_path: Path) -> None:
    """422 is problem+json with errors, and the real 422 body has what the schema requires."""
    app = _app(tmp_path)
    document = app.openapi()
    responses = document["paths"]["/items"]["post"]["responses"]
    assert _schema(responses["422"]) == {"$ref": "#/components/schemas/ValidationProblem"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    required = set(document["components"]["schemas"]["Problem"]["required"])
    async with app_client(app) as client:
        invalid = await client.post("/items", json={"name": 5})
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == PROBLEM
    body = invalid.json()
    assert required <= body.keys()
    assert isinstance(body["detail"], str)
    assert isinstance(body["errors"], list)


async def test_every_operation_documents_the_platform_errors(tmp_path: Path) -> None:
    """400, 404, 429, 500, 503 and default are problems; 413 where there is a body."""
    document = _app(tmp_path).openapi()
    post = document["paths"]["/items"]["post"]["responses"]
    get = document["paths"]["/items/{item_id}"]["get"]["responses"]
    for status in ("400", "404", "429", "500", "503", "default"):
        assert PROBLEM in post[status]["content"], status
        if status != "404":
            assert PROBLEM in get[status]["content"], status
    assert "Retry-After" in post["429"]["headers"]
    assert "413" in post
    assert "413" not in get
    assert get["404"]["description"] == "No such item."  # the operation's own is kept


async def test_an_extension_edits_the_document_through_its_hook(tmp_path: Path) -> None:
    """Build.openapi(hook) runs once, on the document the app serves."""
    calls: list[int] = []

    class Tagging(Extension):
        name = "tagging"

        def build(self, build: Build) -> None:
            def hook(app: Any, document: dict[str, Any]) -> None:
                calls.append(1)
                document["info"]["x-tagged"] = True

            build.openapi(hook)

    app = _app(tmp_path, extensions=[Tagging()])
    async with app_client(app) as client:
        first = (await client.get("/openapi.json")).json()
        second: httpx.Response = await client.get("/openapi.json")
    assert first["info"]["x-tagged"] is True
    assert second.json() == first
    assert calls == [1]
