"""Every error response is RFC 9457 problem+json with the request id, never a stack."""

from __future__ import annotations

import pytest

from tenfold.web import GENERIC_DETAIL, problem_response

_PROBLEM = "application/problem+json"


def _assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == _PROBLEM
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "request_id"} <= body.keys()
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_router_404(client) -> None:
    """An unknown path is a 404 problem with type about:blank."""
    body = _assert_problem(await client.get("/no/such/path"), 404)
    assert body["type"] == "about:blank"
    assert body["title"] == "Not Found"


async def test_router_405_keeps_allow(client) -> None:
    """A wrong method is a 405 problem and still says which methods are allowed."""
    response = await client.delete("/items/1")
    body = _assert_problem(response, 405)
    assert body["title"] == "Method Not Allowed"
    assert response.headers["allow"] == "GET"


async def test_validation_lists_fields_without_input(client) -> None:
    """A 422 lists each invalid field (loc, msg, type) and never echoes the input."""
    payload = {"email": "not-an-email", "password": "hunter2", "age": "old"}
    response = await client.post("/signup", json=payload)
    body = _assert_problem(response, 422)
    assert body["title"] == "Unprocessable Content"
    assert body["type"].endswith("/validation")
    fields = {tuple(e["loc"]): e for e in body["errors"]}
    assert set(fields) == {("body", "email"), ("body", "password"), ("body", "age")}
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])
    assert fields[("body", "age")]["type"] == "int_parsing"
    assert "hunter2" not in response.text
    assert "not-an-email" not in response.text


async def test_path_parameter_validation(client) -> None:
    """A bad path parameter is a 422 naming the parameter."""
    body = _assert_problem(await client.get("/items/abc"), 422)
    assert [e["loc"] for e in body["errors"]] == [["path", "item_id"]]


async def test_malformed_json_is_a_client_error(client) -> None:
    """A body that is not JSON gets a 4xx problem, not a 500."""
    response = await client.post(
        "/signup", content=b'{"email": "a@b", ', headers={"content-type": "application/json"}
    )
    body = _assert_problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"


async def test_unhandled_exception_is_a_bare_500(client, log_lines) -> None:
    """A 500 body has a generic detail and no stack; the log has the stack and request id."""
    response = await client.get("/boom", headers={"X-Request-ID": "err-500"})
    body = _assert_problem(response, 500)
    assert body["detail"] == GENERIC_DETAIL
    assert "Traceback" not in response.text
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    (logged,) = [line for line in log_lines() if line["event"] == "unhandled_exception"]
    assert logged["request_id"] == "err-500"
    assert logged["level"] == "error"
    assert "Traceback" in logged["exception"]
    assert "hunter2" in logged["exception"]
    (access,) = [line for line in log_lines() if line["logger"] == "tenfold.access"]
    assert access["status"] == 500


async def test_exposed_tenfold_error_keeps_its_detail(client) -> None:
    """A ProblemError renders its status, slug type, detail and extensions."""
    body = _assert_problem(await client.get("/missing"), 404)
    assert body["type"] == "https://tenfold.dev/problems/not-found"
    assert body["detail"] == "no widget 42"
    assert body["widget"] == 42


async def test_unavailable_dependency_sends_retry_after(client) -> None:
    """DependencyUnavailable is a 503 problem with Retry-After from the exception."""
    response = await client.get("/db-down")
    body = _assert_problem(response, 503)
    assert body["type"] == "https://tenfold.dev/problems/dependency-unavailable"
    assert response.headers["retry-after"] == "2"


async def test_shutting_down_closes_the_connection(client) -> None:
    """ShuttingDown's response headers (Retry-After, Connection: close) are sent."""
    response = await client.get("/draining")
    _assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert response.headers["connection"] == "close"


async def test_internal_tenfold_error_hides_its_message(client, log_lines) -> None:
    """An error whose detail is not exposable shows the generic detail and logs the stack."""
    response = await client.get("/db-error")
    body = _assert_problem(response, 500)
    assert body["type"] == "https://tenfold.dev/problems/database-error"
    assert body["detail"] == GENERIC_DETAIL
    assert "users_secret" not in response.text
    (logged,) = [line for line in log_lines() if line["event"] == "internal_error"]
    assert "users_secret" in logged["exception"]


async def test_error_raised_in_middleware_keeps_its_status(client) -> None:
    """A TenfoldError raised by a middleware (outside FastAPI's handlers) keeps its status."""
    response = await client.get("/middleware-down")
    _assert_problem(response, 503)
    assert response.headers["retry-after"] == "3"


async def test_http_exception_with_structured_detail(client) -> None:
    """An HTTPException with a non-string detail keeps it as 'data' and keeps its headers."""
    response = await client.get("/teapot")
    body = _assert_problem(response, 418)
    assert body["title"] == "I'm a Teapot"
    assert body["data"] == {"brew": "no"}
    assert response.headers["x-kettle"] == "cold"


async def test_not_modified_has_no_body(client) -> None:
    """A 304 raised as an HTTPException is sent without a body."""
    response = await client.get("/not-modified")
    assert response.status_code == 304
    assert response.content == b""
    assert "x-request-id" in response.headers


async def test_failure_after_the_response_started_is_not_rewritten(client, log_lines) -> None:
    """Once a response has started it is not replaced by a 500; the error is still logged."""
    response = await client.get("/streamed-then-failed")
    assert response.status_code == 200
    assert [line for line in log_lines() if line["event"] == "unhandled_exception"]


def test_extensions_cannot_override_standard_members() -> None:
    """problem_response ignores extensions named like the RFC 9457 members."""
    response = problem_response(400, detail="d", request_id="forged", type="x", extra=1)
    assert response.media_type == _PROBLEM
    assert b"forged" not in response.body
    assert b'"extra":1' in response.body
    assert b'"type":"about:blank"' in response.body


@pytest.mark.parametrize("status", [204, 304])
def test_bodyless_statuses(status: int) -> None:
    """Statuses that forbid a body get none."""
    assert problem_response(status).body == b""


async def test_405_allows_the_methods_of_every_route_on_the_path() -> None:
    """A path served by separate GET and POST routes: the 405 allows both, not only the
    first route's (Starlette's router names the first partial match only)."""
    import httpx
    from fastapi import APIRouter

    from tenfold import create_app

    router = APIRouter()

    @router.get("/things")
    async def list_things() -> list[int]:
        return []

    @router.post("/things")
    async def add_thing() -> int:
        return 1

    app = create_app(routers=[router], configure_logs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.delete("/things")
    _assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"
