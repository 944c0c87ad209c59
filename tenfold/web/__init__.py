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
- ``HttpMiddleware``: the kernel's HTTP layer (``TENFOLD_HTTP__*``): the
  client address and scheme behind trusted proxies (``client_ip``,
  ``ClientAddress``), allowed hosts, CORS, request body and JSON limits
  (a route's own FastAPI ``max_body_size=`` wins; ``KiB``/``MiB`` spell it),
  and security headers.
- ``RouteIndex``: which route a request would get, decided once before routing
  and shared by the metrics, the rate limiter and the HTTP cache (the match is
  kept in the scope under ``ROUTE_MATCH``).
"""

from tenfold._http_settings import KiB, MiB
from tenfold._routes import ROUTE_MATCH, RouteIndex, RouteMatch
from tenfold.web._auth import Authenticate, AuthenticationMiddleware
from tenfold.web._clientip import ClientAddress, IPNetwork, client_ip, parse_networks
from tenfold.web._http import HttpMiddleware
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
    "ClientAddress",
    "HttpMiddleware",
    "IPNetwork",
    "KiB",
    "MiB",
    "Problem",
    "ProblemEntry",
    "ProblemMiddleware",
    "ProblemRegistry",
    "ProblemResponse",
    "RouteIndex",
    "RouteMatch",
    "Slot",
    "client_ip",
    "document_problems",
    "install_problem_handlers",
    "parse_networks",
    "problem_for_exception",
    "problem_response",
    "retry_after_header",
]
