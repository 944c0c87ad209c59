"""``RateLimitMiddleware``: plain ASGI, decides every HTTP request before the app runs.

It finds the policies of a request *before* routing: the app-wide
``default``, every ``prefixes`` entry the path is under, and — by matching the
path against the app's top-level routes (FastAPI flattens included routers,
mounted sub-apps are not looked into) — the ``routes`` entry for the route
template and the endpoint's ``@rate_limit`` marker. Each policy is one
all-or-nothing ``hit_many``; policies are decided in that order, so a refusal
by a later one leaves the earlier ones' hits counted.

Admitted responses carry ``RateLimit-Limit/-Remaining/-Reset`` of the most
restrictive rule (least remaining); a refusal is a 429 problem with
``Retry-After``. When the backend raises ``RateLimiterUnavailable`` a
fail-open policy is skipped (logged, counted in ``unavailable``) and a
fail-closed one answers 503 problem+json; ``Policy.fails_open(method)`` says
which (by default open for reads, closed for writes and auth policies).
Every decision is counted in ``stats`` by policy and outcome.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from starlette.datastructures import MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenfold.observability import get_logger
from tenfold.ratelimit._backend import LimiterBackend
from tenfold.ratelimit._errors import RateLimited, RateLimiterUnavailable
from tenfold.ratelimit._gcra import Decision
from tenfold.ratelimit._policy import Policy, policies_of
from tenfold.ratelimit._stats import RateLimitStats
from tenfold.web import problem_for_exception

__all__ = ["RateLimitMiddleware", "ratelimit_headers"]

_log = get_logger("tenfold.ratelimit")


class RateLimitMiddleware:
    """Applies rate-limit policies to HTTP requests; other scopes pass through."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        backend: LimiterBackend,
        default: Policy | None = None,
        prefixes: Mapping[str, Policy] | None = None,
        routes: Mapping[str, Policy] | None = None,
        stats: RateLimitStats | None = None,
    ) -> None:
        self.app = app
        self.backend = backend
        self.default = default
        self.prefixes = {p.rstrip("/"): policy for p, policy in (prefixes or {}).items()}
        self.routes = dict(routes or {})
        #: Decisions skipped because the backend was unavailable, by policy name.
        self.unavailable: Counter[str] = Counter()
        #: Decisions by policy and outcome; a Prometheus collector.
        self.stats = stats if stats is not None else RateLimitStats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key_scope, policies = self._policies(scope)
        decisions: list[Decision] = []
        for policy in policies:
            try:
                found = await self.backend.hit_many(
                    policy.key_rules(policy.key(key_scope)), cost=policy.cost
                )
            except RateLimiterUnavailable as exc:
                fail_open = policy.fails_open(scope["method"])
                _log.warning("ratelimit_unavailable", policy=policy.name, fail_open=fail_open)
                self.unavailable[policy.name] += 1
                self.stats.record(policy.name, "unavailable")
                if fail_open:
                    continue
                await problem_for_exception(exc)(scope, receive, send)
                return
            decisions.extend(found)
            refused = [d for d in found if not d.allowed]
            if refused:
                self.stats.record(policy.name, "limited")
                await self._refuse(refused, decisions, scope, receive, send)
                return
            self.stats.record(policy.name, "allowed")
        if not decisions:
            await self.app(scope, receive, send)
            return
        headers = ratelimit_headers(decisions)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(
        self,
        refused: list[Decision],
        decisions: list[Decision],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        worst = max(refused, key=lambda d: d.retry_after)
        response = problem_for_exception(RateLimited.from_decision(worst))
        response.headers.update(ratelimit_headers(decisions))
        await response(scope, receive, send)

    def _policies(self, scope: Scope) -> tuple[Scope, list[Policy]]:
        policies = [self.default] if self.default is not None else []
        path = scope.get("path", "")
        policies += [
            policy
            for prefix, policy in self.prefixes.items()
            if path == prefix or path.startswith(prefix + "/") or not prefix
        ]
        route, child = _match(scope, self.app)
        if route is None:
            return scope, list(dict.fromkeys(policies))
        template = getattr(route, "path", None)
        if template in self.routes:
            policies.append(self.routes[template])
        policies += policies_of(child.get("endpoint"))
        # The same policy attached twice (app-wide and on the route) counts once.
        return {**scope, **child, "route": route}, list(dict.fromkeys(policies))


def _match(scope: Scope, inner: ASGIApp) -> tuple[object | None, Scope]:
    # Inside a Starlette app scope["app"] is the app; wrapped around one, it is ``inner``.
    app = scope.get("app", inner)
    for route in getattr(app, "routes", ()):
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route, child
    return None, {}


def ratelimit_headers(decisions: Sequence[Decision]) -> dict[str, str]:
    """The ``RateLimit-*`` fields of the most restrictive of ``decisions`` (least remaining)."""
    worst = min(decisions, key=lambda d: (d.remaining, -d.reset_after))
    return {
        "RateLimit-Limit": str(worst.limit),
        "RateLimit-Remaining": str(worst.remaining),
        "RateLimit-Reset": str(math.ceil(worst.reset_after)),
    }
