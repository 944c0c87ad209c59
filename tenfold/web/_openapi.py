"""The OpenAPI document says what errors really look like: ``document_problems(app)``.

FastAPI documents a ``422`` as ``application/json`` with ``detail`` a list,
and no other error. A tenfold app answers every error with
``application/problem+json`` (``_problems.py``): a 422 has ``detail`` as a
string and the field errors in ``errors``, and the platform's own layers add
400 (bad data, a bad cursor), 404, 413 (a body over the limit), 429 (rate
limits), 500 and 503 (a dependency down, shutting down). So every operation
documents those, and ``default`` covers what an app's own exceptions add
(409, 401...). Clients generated from the document, and schema-driven
testers such as schemathesis, then see the responses they will get.

Responses an operation declares itself (``responses={404: ...}``) are kept.
Extensions add what only they know (the idempotency extension documents the
``Idempotency-Key`` header of its routes) through ``hooks``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI

from tenfold.web._problems import PROBLEM_CONTENT_TYPE

__all__ = ["document_problems"]

_REF = "#/components/schemas/"
_PROBLEM: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem: every error a tenfold app answers has this form.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "request_id"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "request_id": {
            "type": ["string", "null"],
            "description": "Quote it when reporting the problem; logs carry the same id.",
        },
    },
    "additionalProperties": True,
}
_VALIDATION_PROBLEM: dict[str, Any] = {
    "title": "ValidationProblem",
    "description": "A 422: the request does not match the operation's parameters or body "
    "(``errors`` lists the fields), or carries data the server cannot store.",
    "allOf": [
        {"$ref": _REF + "Problem"},
        {
            "type": "object",
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["loc", "msg", "type"],
                        "properties": {
                            "loc": {
                                "type": "array",
                                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                            },
                            "msg": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                }
            },
        },
    ],
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }
}
#: status -> (description, response headers), documented on every operation.
_PLATFORM_ERRORS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "400": ("Bad request: a malformed cursor, header or body.", None),
    "404": ("Not found.", None),
    "429": ("Too many requests: a rate limit refused the request.", _RETRY_AFTER),
    "500": ("An internal error; the detail is generic, the request id is logged.", None),
    "503": ("A dependency is unavailable or the instance is shutting down.", _RETRY_AFTER),
    "default": ("Any other error, as a problem.", None),
}
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


#: ``hook(app, document)``: edits the document in place.
OpenAPIHook = Callable[[Any, dict[str, Any]], None]


def document_problems(app: FastAPI, hooks: Sequence[OpenAPIHook] = ()) -> None:
    """Make ``app.openapi()`` describe tenfold's problem+json error responses.

    ``hooks`` then edit the document (``Build.openapi``); it is built once.
    """
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = problem_schema(build())
            for hook in hooks:
                hook(app, document)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def problem_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an OpenAPI document in place so its errors are problem+json; returns it."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", _PROBLEM)
    schemas.setdefault("ValidationProblem", _VALIDATION_PROBLEM)
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in _METHODS:
                _document(operation)
    _drop_unused(schemas, ("HTTPValidationError", "ValidationError"), schema)
    return schema


def _document(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    validation = responses.get("422")
    if validation is None or _is_fastapi_validation(validation):
        responses["422"] = _response(
            "Invalid fields (listed in errors), or data the server cannot store.",
            "ValidationProblem",
        )
    if "requestBody" in operation:
        responses.setdefault("413", _response("The request body is over the limit.", "Problem"))
    for status, (description, headers) in _PLATFORM_ERRORS.items():
        responses.setdefault(status, _response(description, "Problem", headers))


def _response(description: str, name: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _REF + name}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    content = response.get("content", {}).get("application/json", {})
    return content.get("schema", {}).get("$ref") == _REF + "HTTPValidationError"


def _drop_unused(schemas: dict[str, Any], names: tuple[str, ...], schema: dict[str, Any]) -> None:
    """Remove FastAPI's validation schemas once nothing refers to them."""
    for name in names:
        if _REF + name not in json.dumps(schema):
            schemas.pop(name, None)
