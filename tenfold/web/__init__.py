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
- ``RouteTable``: which route (and policy) a request would get, before routing;
  the HTTP cache and the rate limiter use it.
"""

from tenfold.web._middleware import ProblemMiddleware
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
from tenfold.web._routes import RouteMatch, RouteTable

__all__ = [
    "CORE_PROBLEMS",
    "GENERIC_DETAIL",
    "PROBLEM_CONTENT_TYPE",
    "Problem",
    "ProblemEntry",
    "ProblemMiddleware",
    "ProblemRegistry",
    "ProblemResponse",
    "RouteMatch",
    "RouteTable",
    "install_problem_handlers",
    "problem_for_exception",
    "problem_response",
    "retry_after_header",
]
