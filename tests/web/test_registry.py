"""ProblemRegistry: lookup along the MRO, overrides, mappers, and apps' own exceptions."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware import Middleware

from tenfold import Conflict, DependencyUnavailable, NotFound, TenfoldError
from tenfold.web import (
    CORE_PROBLEMS,
    GENERIC_DETAIL,
    Problem,
    ProblemMiddleware,
    ProblemRegistry,
    install_problem_handlers,
    problem_for_exception,
    retry_after_header,
)

_OUT_OF_STOCK = "https://shop.example/problems/out-of-stock"


class OutOfStock(Conflict):
    """An app's own subclass of a tenfold error."""


class Backorder(OutOfStock):
    """A subclass of the app's subclass."""


class PaymentDeclined(Exception):
    """An app's exception that is not a TenfoldError at all."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class LedgerCorrupt(Exception):
    """An internal failure whose message must never reach a client."""


def test_web_imports_no_capability_package() -> None:
    """tenfold.web loads without any capability package: they import it, never the reverse."""
    code = (
        "import sys, tenfold.web; "
        "print(' '.join({m.split('.')[1] for m in sys.modules if m.startswith('tenfold.')}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    capabilities = {"cache", "db", "health", "idempotency", "ratelimit", "resilience"}
    assert capabilities & set(loaded) == set()
    assert "web" in loaded


def test_registry_starts_from_the_core_table() -> None:
    """An empty registry already answers the core tree."""
    problems = ProblemRegistry()
    assert set(CORE_PROBLEMS) <= set(problems)
    assert len(problems) == len(CORE_PROBLEMS)
    assert repr(problems) == f"ProblemRegistry({len(CORE_PROBLEMS)} exception types)"


def test_closest_class_of_the_mro_wins() -> None:
    """A subclass without an entry finds its nearest registered base."""
    problems = ProblemRegistry({OutOfStock: Problem(409, "Out of Stock", type=_OUT_OF_STOCK)})
    found = problems.lookup(Backorder("none left"))
    assert found is not None
    assert (found.status, found.title, found.type) == (409, "Out of Stock", _OUT_OF_STOCK)
    conflict = problems.lookup(Conflict("taken"))
    assert conflict is not None
    assert conflict.type == "https://tenfold.dev/problems/conflict"


def test_unregistered_exception_has_no_problem() -> None:
    """An exception with no registered class in its MRO is not mapped."""
    assert ProblemRegistry().lookup(KeyError("k")) is None


def test_later_tables_and_register_override_earlier_ones() -> None:
    """An app's entry replaces tenfold's for the same class, and register() replaces both."""
    no_widget = Problem(404, "No Such Widget")
    problems = ProblemRegistry({NotFound: Problem(410, "Gone")})
    assert problems.lookup(NotFound()) == Problem(410, "Gone")
    problems.register(NotFound, no_widget)
    assert problems.lookup(NotFound()) is no_widget


def test_register_invalidates_resolved_lookups() -> None:
    """A class looked up through its base finds its own entry once one is registered."""
    problems = ProblemRegistry()
    base = problems.lookup(OutOfStock())
    assert base is not None
    assert base.status == 409
    problems.register(OutOfStock, Problem(422, "Out of Stock"))
    found = problems.lookup(OutOfStock())
    assert found is not None
    assert found.status == 422


def test_mapper_builds_a_problem_per_exception() -> None:
    """A function registered with @mapper decides per exception, e.g. the status."""
    problems = ProblemRegistry()

    @problems.mapper(PaymentDeclined)
    def declined(exc: PaymentDeclined) -> Problem[PaymentDeclined]:
        return Problem(402 if exc.retryable else 403, "Payment Declined")

    retry = problems.lookup(PaymentDeclined("card expired", retryable=True))
    final = problems.lookup(PaymentDeclined("card stolen", retryable=False))
    assert retry is not None
    assert final is not None
    assert (retry.status, final.status) == (402, 403)
    assert problems.entry(PaymentDeclined) is declined


def test_register_refuses_what_is_not_an_exception_or_a_problem() -> None:
    """Registering a non-exception or a non-problem fails when the registry is built."""
    with pytest.raises(TypeError, match="exception class"):
        ProblemRegistry({"NotFound": Problem(404)})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="Problem or a function"):
        ProblemRegistry({NotFound: 404})  # type: ignore[dict-item]


@pytest.mark.parametrize("status", [200, 302, 600])
def test_problem_refuses_a_status_that_is_not_an_error(status: int) -> None:
    """A Problem's status is a 4xx or 5xx."""
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Problem(status)


def test_detail_is_shown_for_4xx_and_hidden_for_5xx_by_default() -> None:
    """Without expose_detail a client error shows its message and a server error does not."""
    assert Problem(409).shows_detail
    assert not Problem(500).shows_detail
    assert Problem(503, expose_detail=True).shows_detail
    assert not Problem(400, expose_detail=False).shows_detail


def test_rendering_uses_headers_extensions_and_the_exception_keywords() -> None:
    """Headers and members come from the Problem; a ProblemError's keywords stay members."""
    problems = ProblemRegistry(
        {
            OutOfStock: Problem(
                409,
                "Out of Stock",
                type=_OUT_OF_STOCK,
                headers=lambda exc: {"Retry-After": "3600"},
                extensions=lambda exc: {"restock": "tomorrow"},
            )
        }
    )
    response = problem_for_exception(OutOfStock("none left", sku="A-1"), problems)
    assert response.status_code == 409
    assert response.headers["retry-after"] == "3600"
    assert response.body == (
        b'{"type":"https://shop.example/problems/out-of-stock","title":"Out of Stock",'
        b'"status":409,"detail":"none left","request_id":null,"sku":"A-1","restock":"tomorrow"}'
    )


def test_title_defaults_to_the_status_phrase() -> None:
    """A Problem without a title is rendered with the status phrase and about:blank."""
    response = problem_for_exception(
        PaymentDeclined("card expired", retryable=True),
        ProblemRegistry({PaymentDeclined: Problem(402)}),
    )
    assert response.body.startswith(
        b'{"type":"about:blank","title":"Payment Required","status":402,"detail":"card expired"'
    )


def test_retry_after_header_rounds_and_falls_back() -> None:
    """Retry-After is whole seconds, at least 1, the default when unknown, absent if none."""
    with_default, without = retry_after_header(), retry_after_header(None)
    assert with_default(DependencyUnavailable(retry_after=2.6)) == {"Retry-After": "3"}
    assert with_default(DependencyUnavailable(retry_after=0.1)) == {"Retry-After": "1"}
    assert with_default(DependencyUnavailable(retry_after=None)) == {"Retry-After": "1"}
    assert without(DependencyUnavailable(retry_after=None)) == {}
    assert without(TenfoldError()) == {}


class _RaisingMiddleware:
    """Raises an app exception from outside FastAPI's handlers."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "http" and scope["path"] == "/middleware-declined":
            raise PaymentDeclined("card expired", retryable=True)
        await self.app(scope, receive, send)  # type: ignore[operator]


@pytest.fixture
async def shop() -> AsyncIterator[httpx.AsyncClient]:
    problems = ProblemRegistry(
        {
            OutOfStock: Problem(409, "Out of Stock", type=_OUT_OF_STOCK),
            PaymentDeclined: Problem(402, "Payment Declined"),
            LedgerCorrupt: Problem(500, "Ledger Corrupt"),
        }
    )
    app = FastAPI(
        middleware=[
            Middleware(ProblemMiddleware, problems=problems),
            Middleware(_RaisingMiddleware),
        ]
    )
    install_problem_handlers(app, problems)

    @app.get("/stock")
    async def stock() -> None:
        raise OutOfStock("none left", sku="A-1")

    @app.get("/pay")
    async def pay() -> None:
        raise PaymentDeclined("card expired", retryable=True)

    @app.get("/ledger")
    async def ledger() -> None:
        raise LedgerCorrupt("row 42 of accounts_secret")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        yield client


async def test_app_errors_are_answered_from_the_registry(shop: httpx.AsyncClient) -> None:
    """An app's TenfoldError subclass and its own exception both get their registered problem."""
    stock = await shop.get("/stock")
    assert (stock.status_code, stock.json()["type"], stock.json()["sku"]) == (
        409,
        _OUT_OF_STOCK,
        "A-1",
    )
    pay = await shop.get("/pay")
    assert (pay.status_code, pay.json()["title"], pay.json()["detail"]) == (
        402,
        "Payment Declined",
        "card expired",
    )


async def test_registered_exception_raised_in_middleware(shop: httpx.AsyncClient) -> None:
    """ProblemMiddleware answers a registered exception raised outside FastAPI's handlers."""
    response = await shop.get("/middleware-declined")
    assert response.status_code == 402
    assert response.headers["content-type"] == "application/problem+json"


async def test_registered_5xx_hides_its_message(shop: httpx.AsyncClient) -> None:
    """A registered 5xx without expose_detail shows the generic detail, never its message."""
    response = await shop.get("/ledger")
    assert response.status_code == 500
    assert response.json()["detail"] == GENERIC_DETAIL
    assert "accounts_secret" not in response.text
