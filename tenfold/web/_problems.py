"""Error responses as RFC 9457 ``application/problem+json``, rendered with orjson.

Every body has ``type``, ``title``, ``status``, ``detail`` and ``request_id``;
validation errors add ``errors: [{loc, msg, type}]`` (never the rejected
input: it may be a password). Which status, title, type and headers an
exception gets is looked up in a ``ProblemRegistry`` (``_registry.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from tenfold._context import current_request_id
from tenfold._errors import ProblemError, TenfoldError
from tenfold.observability import get_logger, report_exception
from tenfold.web._registry import Problem, ProblemRegistry

__all__ = [
    "GENERIC_DETAIL",
    "PROBLEM_CONTENT_TYPE",
    "ProblemResponse",
    "install_problem_handlers",
    "problem_for_exception",
    "problem_response",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
#: What a client sees instead of an internal error's message.
GENERIC_DETAIL = "The server could not complete the request. Quote the request_id if you report it."
_VALIDATION_TYPE = "https://tenfold.dev/problems/validation"
_MEMBERS = frozenset({"type", "title", "status", "detail", "request_id"})
# Responses that must not carry a body (RFC 9110 sections 6.4.1, 15.3.5, 15.4.5).
_BODYLESS = frozenset({204, 205, 304})

_log = get_logger("tenfold.web")
# What a renderer knows when it is given no registry: the core tree only.
_CORE = ProblemRegistry()


class ProblemResponse(Response):
    """A ``Response`` whose content is a problem dict, serialised with orjson."""

    media_type = PROBLEM_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str)


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """A problem+json response for ``status``; ``request_id`` comes from the context.

    ``title`` defaults to the status phrase and ``type_`` to ``about:blank``
    (RFC 9457 section 4.2.1). Extensions never override the standard members.
    """
    if status < 200 or status in _BODYLESS:
        return Response(status_code=status, headers=dict(headers) if headers else None)
    title = title or _phrase(status)
    body: dict[str, Any] = {
        "type": type_ or "about:blank",
        "title": title,
        "status": status,
        "detail": detail or title,
        "request_id": current_request_id(),
    }
    for key, value in extensions.items():
        if key not in _MEMBERS:
            body[key] = value
    return ProblemResponse(body, status_code=status, headers=dict(headers) if headers else None)


def problem_for_exception(exc: Exception, problems: ProblemRegistry | None = None) -> Response:
    """The problem response for any exception; unknown ones are a generic 500.

    ``problems`` decides what a ``TenfoldError`` (or any class registered
    there) becomes; by default only tenfold's core tree is known. Logs what a
    client must not see: the stack of a 500 and of any error whose detail is
    not shown, with the request id (the log processors add it).
    """
    if isinstance(exc, HTTPException):
        return _http_problem(exc)
    if isinstance(exc, RequestValidationError):
        return _validation_problem(exc)
    problem = (problems if problems is not None else _CORE).lookup(exc)
    if problem is not None:
        return _mapped_problem(exc, problem)
    _log.error("unhandled_exception", error_type=type(exc).__name__, exc_info=exc)
    report_exception(exc)
    return problem_response(500, detail=GENERIC_DETAIL)


def install_problem_handlers(app: FastAPI, problems: ProblemRegistry | None = None) -> None:
    """Answer HTTP errors, validation errors and the classes of ``problems`` with problem+json.

    Router 404/405 arrive here as ``HTTPException``. Exceptions of any other
    type are left to ``ProblemMiddleware`` (they must pass the exception
    handlers to reach a layer that still has the request context); so are
    classes registered in ``problems`` after this call.
    """
    registry = problems if problems is not None else _CORE

    async def handle(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            exc = _every_allowed_method(request, exc)
        return problem_for_exception(exc, registry)

    app.add_exception_handler(HTTPException, handle)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, handle)  # type: ignore[arg-type]
    for exc_type in registry:
        # A handler for Exception itself would run in Starlette's outermost layer, where
        # the request context is gone; ProblemMiddleware answers those instead.
        if exc_type not in (Exception, BaseException):
            app.add_exception_handler(exc_type, handle)  # type: ignore[arg-type]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _every_allowed_method(request: Request, exc: HTTPException) -> HTTPException:
    """The router's 405 names the methods of the first route on the path only; a path
    served by several routes (GET and POST, say) allows all of theirs (RFC 9110 15.5.6).
    Each method is asked of the routes themselves, however they are nested."""
    routes = getattr(request.app, "routes", ())
    methods = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    if not methods:
        return exc
    return HTTPException(
        405, detail=exc.detail, headers={**(exc.headers or {}), "Allow": ", ".join(methods)}
    )


def _mapped_problem(exc: BaseException, problem: Problem[Any]) -> Response:
    status = problem.status
    if problem.detail is not None:
        detail = problem.detail
        _log.warning(
            "service_unavailable" if status >= 500 else "client_error",
            error_type=type(exc).__name__,
            error=exc.message if isinstance(exc, TenfoldError) else str(exc),
        )
    elif problem.shows_detail:
        detail = (exc.message if isinstance(exc, TenfoldError) else str(exc)) or None
        if status >= 500:
            _log.warning(
                "service_unavailable",
                error_type=type(exc).__name__,
                detail=detail or problem.title,
            )
    else:
        detail = GENERIC_DETAIL
        # context is for logs (a DatabaseError's driver class, SQLSTATE and statement).
        context = exc.context if isinstance(exc, TenfoldError) and exc.context else None
        extra = {"context": context} if context else {}
        _log.error("internal_error", error_type=type(exc).__name__, exc_info=exc, **extra)
        report_exception(exc)
    extensions = dict(exc.extensions) if isinstance(exc, ProblemError) else {}
    if problem.extensions is not None:
        extensions.update(problem.extensions(exc))
    return problem_response(
        status,
        title=problem.title,
        detail=detail,
        type_=problem.type,
        headers=problem.headers(exc) if problem.headers is not None else None,
        **extensions,
    )


def _http_problem(exc: HTTPException) -> Response:
    extensions: dict[str, Any] = {}
    detail = exc.detail
    if not isinstance(detail, str):
        # FastAPI allows any JSON as HTTPException.detail; keep it, as an extension.
        extensions["data"] = detail
        detail = None
    return problem_response(exc.status_code, detail=detail, headers=exc.headers, **extensions)


def _validation_problem(exc: RequestValidationError) -> Response:
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    fields = "field" if len(errors) == 1 else "fields"
    return problem_response(
        422,
        title="Unprocessable Content",
        detail=f"The request has {len(errors)} invalid {fields}.",
        type_=_VALIDATION_TYPE,
        errors=errors,
    )


def _phrase(status: int) -> str:
    if status == 422:
        return "Unprocessable Content"  # RFC 9110's name; Python < 3.13 says "Entity"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
