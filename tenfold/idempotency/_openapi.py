"""The OpenAPI document names the ``Idempotency-Key`` header of idempotent routes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tenfold.idempotency._session import IdempotencyConfig, IdempotentRoute

__all__ = ["document_keys"]

_REF = "#/components/schemas/"


def document_keys(config: Callable[[], IdempotencyConfig]) -> Callable[[Any, dict[str, Any]], None]:
    """A ``Build.openapi`` hook: the key header (and 409) on each ``IdempotentRoute`` method."""

    def hook(app: Any, document: dict[str, Any]) -> None:
        cfg = config()
        paths = document.get("paths", {})
        for path, methods in _idempotent_routes(app.routes):
            for method in methods & cfg.methods:
                operation = paths.get(path, {}).get(method.lower())
                if operation is not None:
                    _document(operation, cfg)

    return hook


def _idempotent_routes(routes: Iterable[Any]) -> Iterator[tuple[str, set[str]]]:
    """(path template, methods) of every ``IdempotentRoute``, through included routers."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):  # FastAPI >= 0.16x keeps included routers as one route
            for context in contexts():
                if isinstance(getattr(context, "original_route", None), IdempotentRoute):
                    yield context.path_format, set(context.methods or ())
        elif isinstance(route, IdempotentRoute):
            yield route.path_format, set(route.methods or ())


def _document(operation: dict[str, Any], cfg: IdempotencyConfig) -> None:
    parameters = operation.setdefault("parameters", [])
    named = {(p.get("in"), p.get("name", "").lower()) for p in parameters}
    key = {
        "name": cfg.header,
        "in": "header",
        "required": cfg.required,
        "description": "Makes the request safe to retry: a repeat with the same key gets "
        "the first response back and runs nothing twice.",
        "schema": {"type": "string", "minLength": 1, "maxLength": cfg.max_key_length},
    }
    scope = {
        "name": cfg.api_key_header,
        "in": "header",
        "required": False,
        "description": "Whose keys these are, for a client without an authenticated user.",
        "schema": {"type": "string", "minLength": 1},
    }
    for parameter in (key, scope):
        if ("header", parameter["name"].lower()) not in named:
            parameters.append(parameter)
    responses = operation.setdefault("responses", {})
    responses.setdefault("409", _problem("A request with this key is still being processed."))
    # The key sent again with a different request is a 422 too, without field errors.
    responses.get("422", {})["description"] = (
        "Invalid fields (listed in errors), data the server cannot store, or the "
        "idempotency key was used for a different request."
    )


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": _REF + "Problem"}}},
    }
