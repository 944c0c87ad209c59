"""HTTP-facing pieces shared by every tenfold app: RFC 9457 problem responses.

- ``ProblemRegistry``: which ``Problem`` (status, title, type, headers,
  extra members) each exception class becomes, looked up along the MRO;
  starts from ``CORE_PROBLEMS``, each capability package adds its
  ``PROBLEMS``, and apps register their own.
- ``install_problem_handlers(app, problems)``: HTTP errors (router 404/405
  included), validation errors (422 with the fields) and the registered
  exceptions as problem+json.
- ``ProblemMiddleware``: any other exception becomes a 500 problem without a
  stack trace; the stack is logged with the request id.
- ``problem_response(...)``: build one yourself.
- ``document_problems(app)``: the OpenAPI document describes those responses
  (``create_app`` does it; call it for a FastAPI app wired by hand).
- ``Slot``: the ordered middleware slots of an app; ``AuthenticationMiddleware``
  fills the authentication slot (``create_app(authenticate=...)``).
- ``RouteIndex``: which route a request would get, decided once before routing
  and shared by the metrics, the rate limiter and the HTTP cache (the match is
  kept in the scope under ``ROUTE_MATCH``).
"""

from tenfold._routes import ROUTE_MATCH, RouteIndex, RouteMatch
from tenfold.web._auth import Authenticate, AuthenticationMiddleware
from tenfold.web._middleware import ProblemMiddleware
from tenfold.web._openapi import document_problems
from tenfold.web._problems import (
    GENERIC_DETAIL,
    PROBLEM_CONTENT_TYPE,
    ProblemResponse,
    install_problem_handlers,
    problem_for_exception,
    problem_response,
)
from tenfold.web._registry import (
    CORE_PROBLEMS,
    Problem,
    ProblemEntry,
    ProblemRegistry,
    retry_after_header,
)
from tenfold.web._slots import Slot

__all__ = [
    "CORE_PROBLEMS",
    "GENERIC_DETAIL",
    "PROBLEM_CONTENT_TYPE",
    "ROUTE_MATCH",
    "Authenticate",
    "AuthenticationMiddleware",
    "Problem",
    "ProblemEntry",
    "ProblemMiddleware",
    "ProblemRegistry",
    "ProblemResponse",
    "RouteIndex",
    "RouteMatch",
    "Slot",
    "document_problems",
    "install_problem_handlers",
    "problem_for_exception",
    "problem_response",
    "retry_after_header",
]
