"""``RateLimitMiddleware``: plain ASGI, decides every HTTP request before the app runs.

It finds the policies of a request *before* routing: the app-wide
``default``, every ``prefixes`` entry the path is under, and — by matching the
path against the app's routes with the shared ``tenfold.web.RouteIndex`` (included
routers and mounted routers too; a mounted foreign app is not looked into) —
the ``routes`` entry for the full route template and the endpoint's
``@rate_limit`` marker. Matching happens only when something needs it (a
``routes`` entry, a marker somewhere, or a key function not known to ignore
the route); key functions then see ``scope["route"]``, ``scope["endpoint"]``
and the template under ``ROUTE_TEMPLATE``. Each policy is one
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
from collections.abc import Collection, Mapping, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenfold._routes import RouteIndex
from tenfold.observability import get_logger
from tenfold.ratelimit._backend import LimiterBackend
from tenfold.ratelimit._errors import PROBLEMS, RateLimited, RateLimiterUnavailable
from tenfold.ratelimit._gcra import Decision
from tenfold.ratelimit._keys import ROUTE_TEMPLATE, route_free
from tenfold.ratelimit._policy import Policy, policies_of
from tenfold.ratelimit._stats import RateLimitStats
from tenfold.web import ProblemRegistry, problem_for_exception

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
        exempt: Collection[str] = (),
        index: RouteIndex | None = None,
        problems: ProblemRegistry | None = None,
    ) -> None:
        self.app = app
        #: How refusals are answered; the app's registry, or tenfold's core and ratelimit's.
        self.problems = problems if problems is not None else ProblemRegistry(PROBLEMS)
        #: Paths (exact) never limited: health probes and metrics scrapes, say.
        self.exempt = frozenset(exempt)
        self.backend = backend
        self.default = default
        self.prefixes = {p.rstrip("/"): policy for p, policy in (prefixes or {}).items()}
        self.routes = dict(routes or {})
        #: Decisions skipped because the backend was unavailable, by policy name.
        self.unavailable: Counter[str] = Counter()
        #: Decisions by policy and outcome; a Prometheus collector.
        self.stats = stats if stats is not None else RateLimitStats()
        self._static = [default] if default is not None else []
        self._keys_route_free = all(
            route_free(policy.key) for policy in [*self._static, *self.prefixes.values()]
        )
        # The app's routes (shared with the other middleware: a request is matched once);
        # matched only when a policy or key needs the route.
        self.index = index or RouteIndex()
        self._must_match: tuple[object, bool] | None = None  # (routes table, decision)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt and scope["path"] in self.exempt):
            await self.app(scope, receive, send)
            return
        key_scope, policies = self._policies(scope)
        if not policies:
            await self.app(scope, receive, send)
            return
        decisions: list[Decision] = []
        record = self.stats.record
        for policy in policies:
            try:
                found = await self.backend.hit_many(
                    policy.key_rules(policy.key(key_scope)), policy.cost
                )
            except RateLimiterUnavailable as exc:
                fail_open = policy.fails_open(scope["method"])
                _log.warning("ratelimit_unavailable", policy=policy.name, fail_open=fail_open)
                self.unavailable[policy.name] += 1
                record(policy.name, "unavailable")
                if fail_open:
                    continue
                self._label(scope)
                await problem_for_exception(exc, self.problems)(scope, receive, send)
                return
            decisions += found
            if not all(d.allowed for d in found):
                record(policy.name, "limited")
                refused = [d for d in found if not d.allowed]
                await self._refuse(refused, decisions, scope, receive, send)
                return
            record(policy.name, "allowed")
        if not decisions:
            await self.app(scope, receive, send)
            return
        extra = _raw_headers(decisions)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A new list: the response's own may be shared (a cached response's headers).
                message["headers"] = [*message.get("headers", ()), *extra]
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
        response = problem_for_exception(RateLimited.from_decision(worst), self.problems)
        response.headers.update(ratelimit_headers(decisions))
        self._label(scope)
        await response(scope, receive, send)

    def _label(self, scope: Scope) -> None:
        """Name the route of a refused request (the router never runs) for metrics and logs."""
        if "route" not in scope:
            table = self.index.table(scope, self.app)
            found = self.index.match(scope, self.app, table) if table is not None else None
            if found is not None:
                found.label(scope, table.router)  # type: ignore[union-attr]

    def _policies(self, scope: Scope) -> tuple[Scope, list[Policy]]:
        policies = self._static
        if self.prefixes:
            path = scope.get("path", "")
            policies = policies + [
                policy
                for prefix, policy in self.prefixes.items()
                if path == prefix or path.startswith(prefix + "/") or not prefix
            ]
        table = self.index.table(scope, self.app)
        if table is None or not self._needs_match(table):
            return scope, policies
        found = self.index.match(scope, self.app, table)
        if found is None:
            return scope, list(dict.fromkeys(policies))
        policies = list(policies)
        if found.template in self.routes:
            policies.append(self.routes[found.template])
        policies += found.policy(policies_of)
        key_scope = {
            **scope,
            "route": found.route,
            "endpoint": found.endpoint,
            ROUTE_TEMPLATE: found.template,
        }
        # The same policy attached twice (app-wide and on the route) counts once.
        return key_scope, list(dict.fromkeys(policies))

    def _needs_match(self, table: object) -> bool:
        """Whether requests must be matched to a route: a routes entry, a marker somewhere,
        or a key function not known to ignore the route (decided once per routes table)."""
        known = self._must_match
        if known is not None and known[0] is table:
            return known[1]
        found = (
            bool(self.routes) or not self._keys_route_free or bool(table.policies(policies_of))  # type: ignore[attr-defined]
        )
        self._must_match = (table, found)
        return found


def _fields(decisions: Sequence[Decision]) -> tuple[int, int, int]:
    """Limit, remaining and reset (whole seconds) of the most restrictive decision."""
    if len(decisions) == 1:
        worst = decisions[0]
    else:
        worst = min(decisions, key=lambda d: (d.remaining, -d.reset_after))
    return worst.limit, worst.remaining, math.ceil(worst.reset_after)


def _raw_headers(decisions: Sequence[Decision]) -> list[tuple[bytes, bytes]]:
    limit, remaining, reset = _fields(decisions)
    return [
        (b"ratelimit-limit", b"%d" % limit),
        (b"ratelimit-remaining", b"%d" % remaining),
        (b"ratelimit-reset", b"%d" % reset),
    ]


def ratelimit_headers(decisions: Sequence[Decision]) -> dict[str, str]:
    """The ``RateLimit-*`` fields of the most restrictive of ``decisions`` (least remaining)."""
    limit, remaining, reset = _fields(decisions)
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(remaining),
        "RateLimit-Reset": str(reset),
    }
