"""Roles, permissions and the checks routes make with them.

    roles = Roles({"admin": ["*"], "organiser": ["matches:*", "teams:read"],
                   "player": ["matches:read"]})
    access = Access(roles, Grants(db))          # provided on the platform

    @router.post("/matches", dependencies=[Depends(require("matches:write"))])
    async def create_match(...): ...

    @router.delete("/tournaments/{tid}")
    async def close(tid: int, who: Principal = Depends(
            require_on("tournaments:admin", lambda tid: f"tournament:{tid}"))): ...

    match = await owned(await load(match_id))   # 404 unless the caller owns it

A permission is ``<segment>[:<segment>...]`` (``matches:write``). A role may
hold ``*`` (every permission) or a prefix wildcard ``matches:*`` (every
permission under ``matches:``). Each distinct set of roles is resolved to its
permissions once and memoised, so a check is a few set lookups.

Who holds what:

- a user principal: the global roles on ``principal.roles`` and, for a check on
  a resource, the roles ``Grants`` gives them on it. A user's ``scopes`` (say,
  from an OAuth token) grant nothing here.
- an ``api_key`` principal: its ``scopes`` are its permissions, and nothing
  else: no roles, no grants (its id is its owner's, and a key never inherits
  the owner's standing).
- a ``service`` principal: its ``scopes`` as permissions, plus its roles and
  grants like a user.

``require`` answers 401 to anonymous callers and 403 to callers lacking the
permission. ``require_on`` and ``owned`` answer 404 instead of 403: a caller
who may not act on a resource must not learn that it exists.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from starlette.requests import HTTPConnection

from tenfold._context import Principal, current_principal
from tenfold._errors import ConfigurationError, Forbidden, NotFound, Unauthorized
from tenfold.auth._grants import ROLE_NAME, Grants, grants_table

__all__ = [
    "Access",
    "Grants",
    "Roles",
    "grants_table",
    "owned",
    "permission_granted",
    "require",
    "require_on",
    "visible",
]

T = TypeVar("T")

_SEGMENT = r"[A-Za-z0-9_.-]+"
#: A permission a role or a key may hold: wildcards allowed.
_HELD = re.compile(rf"\*|{_SEGMENT}(?::{_SEGMENT})*(?::\*)?").fullmatch
#: A permission a check asks for: no wildcards.
_ASKED = re.compile(rf"{_SEGMENT}(?::{_SEGMENT})*").fullmatch
_MAX_PERMISSION = 128
#: Distinct role sets memoised per ``Roles`` (cleared when full: sets are few in practice).
_MEMO_SIZE = 4096
#: Principal kinds whose scopes are permissions.
SCOPED_KINDS = frozenset({"api_key", "service"})


def valid_held_permission(permission: Any) -> bool:
    """Whether ``permission`` may be held by a role or an API key (wildcards allowed)."""
    return (
        isinstance(permission, str)
        and len(permission) <= _MAX_PERMISSION
        and _HELD(permission) is not None
    )


def _matching(permission: str) -> frozenset[str]:
    """What a holder needs one of to have ``permission``: itself, each prefix wildcard, ``*``."""
    parts = permission.split(":")
    wildcards = (":".join(parts[:i]) + ":*" for i in range(1, len(parts)))
    return frozenset((permission, "*", *wildcards))


_matches: dict[str, frozenset[str]] = {}


def matching(permission: str) -> frozenset[str]:
    found = _matches.get(permission)
    if found is None:
        found = _matching(permission)
        if len(_matches) < _MEMO_SIZE:  # route permissions are few; never grow unbounded
            _matches[permission] = found
    return found


def permission_granted(held: Iterable[str], permission: str) -> bool:
    """Whether the permissions ``held`` (wildcards included) cover ``permission``."""
    held = held if isinstance(held, frozenset | set) else frozenset(held)
    return not held.isdisjoint(matching(permission))


class Roles:
    """What each role may do: ``{role: [permission, ...]}``, checked when built.

    A role name is a letter then up to 63 of ``[A-Za-z0-9_.-]``; a bad name or
    permission is a ``ConfigurationError`` naming it. Roles not in the mapping
    grant nothing (a token may carry roles this service does not know).
    """

    def __init__(self, mapping: Mapping[str, Iterable[str]]) -> None:
        by_role: dict[str, frozenset[str]] = {}
        for role, permissions in mapping.items():
            if not isinstance(role, str) or ROLE_NAME(role) is None:
                raise ConfigurationError(f"not a role name: {role!r}")
            if isinstance(permissions, str):
                raise ConfigurationError(
                    f"role {role!r}: give a list of permissions, not the string {permissions!r}"
                )
            held = frozenset(permissions)
            for permission in held:
                if not valid_held_permission(permission):
                    raise ConfigurationError(
                        f"role {role!r}: not a permission: {permission!r} (expected "
                        "`resource:action`, `resource:*` or `*`)"
                    )
            by_role[role] = held
        self._by_role = by_role
        self._memo: dict[frozenset[str], frozenset[str]] = {}

    def __repr__(self) -> str:
        return f"Roles({sorted(self._by_role)!r})"

    def __contains__(self, role: object) -> bool:
        return role in self._by_role

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._by_role)

    def permissions_of(self, roles: Iterable[str]) -> frozenset[str]:
        """Every permission ``roles`` hold between them, wildcards as declared."""
        key = roles if isinstance(roles, frozenset) else frozenset(roles)
        found = self._memo.get(key)
        if found is None:
            found = frozenset().union(*(self._by_role.get(r, ()) for r in key))
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = found
        return found

    def allows(self, roles: Iterable[str], permission: str) -> bool:
        """Whether any of ``roles`` holds ``permission`` (directly or by a wildcard)."""
        return not self.permissions_of(roles).isdisjoint(matching(permission))


class Access:
    """The access checks of one app: its ``Roles``, and its ``Grants`` when resources have
    roles of their own. Extensions provide it on the platform, where ``require`` finds it.
    """

    def __init__(self, roles: Roles, grants: Grants | None = None) -> None:
        self.roles = roles
        self.grants = grants

    def __repr__(self) -> str:
        return f"Access({self.roles!r}, grants={self.grants!r})"

    def allows(self, principal: Principal | None, permission: str) -> bool:
        """Whether ``principal`` holds ``permission`` globally (no resource grants looked at)."""
        if principal is None:
            return False
        if principal.kind in SCOPED_KINDS and permission_granted(principal.scopes, permission):
            return True
        if principal.kind == "api_key":
            return False
        return self.roles.allows(principal.roles, permission)

    async def can(
        self, principal: Principal | None, permission: str, resource: str | None = None
    ) -> bool:
        """Whether ``principal`` may do ``permission``, on ``resource`` when given.

        Global roles (and scopes, for keys and services) come first; the grants on
        ``resource`` are read only when they do not already allow it.
        """
        if self.allows(principal, permission):
            return True
        if principal is None or resource is None or self.grants is None:
            return False
        if principal.kind == "api_key":
            return False
        on = await self.grants.roles_on(principal.id, resource)
        return bool(on) and self.roles.allows(on, permission)

    async def check(
        self, permission: str, resource: str | None = None, principal: Principal | None = None
    ) -> Principal:
        """The principal (the current one by default: a request's, or a task's, restored
        from its enqueuer) if it may do ``permission``; otherwise 401 when there is none,
        403 when it may not (for a resource whose existence must not leak, use
        ``owned`` or ``require_on``, which answer 404)."""
        acting = principal if principal is not None else current_principal()
        if acting is None:
            raise Unauthorized("log in first")
        if not await self.can(acting, permission, resource):
            raise Forbidden(f"needs the {permission} permission")
        return acting

    async def owned(
        self,
        obj: T | None,
        principal: Principal | None = None,
        *,
        owner: Callable[[T], Any] = lambda o: o.owner_id,  # type: ignore[attr-defined]
        permission: str | None = None,
        resource: str | None = None,
    ) -> T:
        """``obj`` if ``principal`` (default: the current one) owns it or may ``permission``
        (on ``resource`` when given); else ``NotFound``, as for a missing ``obj``."""
        if obj is None:
            raise NotFound("not found")
        if principal is None:
            principal = current_principal()
        if principal is not None:
            held_by = owner(obj)
            if held_by is not None and str(held_by) == principal.id:
                return obj
            if permission is not None and await self.can(principal, permission, resource):
                return obj
        raise NotFound("not found")


def require(permission: str, *, access: Access | None = None) -> Callable[..., Any]:
    """A FastAPI dependency: the current principal if it holds ``permission``.

    Anonymous callers get 401 (``Unauthorized``), callers lacking the permission
    403 (``Forbidden``). Use it as ``Depends(require("matches:write"))`` in a
    route's ``dependencies`` or as a parameter's default (it returns the
    ``Principal``). ``access`` defaults to the platform's ``Access``.
    """
    _check_asked(permission)

    async def require_permission(connection: HTTPConnection) -> Principal:
        principal = current_principal()
        if principal is None:
            raise Unauthorized("authentication required")
        if not await _access(connection, access).can(principal, permission):
            raise Forbidden(f"this needs the permission {permission!r}")
        return principal

    require_permission.__name__ = f"require_{_identifier(permission)}"
    return require_permission


def require_on(
    permission: str, resource: Callable[..., str], *, access: Access | None = None
) -> Callable[..., Any]:
    """A FastAPI dependency: the current principal if it may ``permission`` on the resource
    ``resource(**path_params)`` names (``lambda tid: f"tournament:{tid}"``).

    ``resource`` takes path parameters by name, as the router converted them
    (``{tid:int}`` gives an int; plain ``{tid}`` a string). Anonymous callers get
    401; callers who may not act on the resource get 404 (``NotFound``), exactly
    as for one that does not exist.
    """
    _check_asked(permission)
    if not callable(resource):
        raise ConfigurationError("require_on(): resource is a function of path parameters")
    names = [
        p.name
        for p in inspect.signature(resource).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]

    async def require_permission_on(connection: HTTPConnection) -> Principal:
        principal = current_principal()
        if principal is None:
            raise Unauthorized("authentication required")
        params = connection.path_params
        missing = [n for n in names if n not in params]
        if missing:
            raise ConfigurationError(
                f"require_on({permission!r}): the route has no path parameter {missing[0]!r}"
            )
        named = resource(**{n: params[n] for n in names})
        if not await _access(connection, access).can(principal, permission, named):
            raise NotFound("not found")
        return principal

    require_permission_on.__name__ = f"require_{_identifier(permission)}_on"
    return require_permission_on


async def owned(
    obj: T | None,
    principal: Principal | None = None,
    *,
    owner: Callable[[T], Any] = lambda o: o.owner_id,  # type: ignore[attr-defined]
    permission: str | None = None,
    resource: str | None = None,
    access: Access | None = None,
) -> T:
    """``obj`` if the principal (default: the current one) owns it, else ``NotFound``.

    ``owner(obj)`` is the owner's id (``obj.owner_id`` by default; compared as a
    string with ``principal.id``). With ``permission`` (say ``matches:admin``) a
    principal that holds it, globally or on ``resource``, may have foreign
    objects too; that check needs ``access`` (in a route, ``access: Use[Access]``).
    ``None``, a foreign object and an anonymous caller all give ``NotFound``, so
    whether an object exists never leaks.
    """
    if permission is not None:
        if access is None:
            raise ConfigurationError(
                "owned(..., permission=...) needs access=: the app's Access (Use[Access])"
            )
        return await access.owned(
            obj, principal, owner=owner, permission=permission, resource=resource
        )
    if obj is None:
        raise NotFound("not found")
    principal = principal if principal is not None else current_principal()
    held_by = owner(obj) if principal is not None else None
    if principal is None or held_by is None or str(held_by) != principal.id:
        raise NotFound("not found")
    return obj


def visible(
    statement: sa.Select[Any],
    principal: Principal | None,
    owner_column: sa.ColumnElement[Any],
    *,
    bypass: str | None = None,
    access: Access | None = None,
) -> sa.Select[Any]:
    """``statement`` limited to the rows ``principal`` owns (``owner_column = principal.id``).

    A principal holding ``bypass`` globally (checked with ``access``) sees every
    row; an anonymous one sees none.
    """
    if principal is None:
        return statement.where(sa.false())
    if bypass is not None:
        if access is None:
            raise ConfigurationError("visible(..., bypass=...) needs access=: the app's Access")
        if access.allows(principal, bypass):
            return statement
    return statement.where(owner_column == principal.id)


def _access(connection: HTTPConnection, given: Access | None) -> Access:
    if given is not None:
        return given
    from tenfold._platform import find_on

    found = find_on(connection.app, Access)
    if found is None:
        raise ConfigurationError(
            "no tenfold.auth Access on this app's platform: add the auth extension, "
            "platform.provide(Access(roles, grants)), or pass access= to require()"
        )
    return found


def _check_asked(permission: str) -> None:
    if (
        not isinstance(permission, str)
        or len(permission) > _MAX_PERMISSION
        or _ASKED(permission) is None
    ):
        raise ConfigurationError(
            f"not a permission to require: {permission!r} (expected `resource:action`, "
            "no wildcards)"
        )


def _identifier(permission: str) -> str:
    return re.sub(r"\W", "_", permission)
