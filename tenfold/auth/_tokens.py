"""Access tokens: short-lived signed JWTs (RFC 9068 profile) that carry a ``Principal``.

``AccessTokens.issue(principal)`` signs a token with the key set's active key;
``verify(token)`` checks it and gives the principal back, or raises
``InvalidToken`` (401, ``WWW-Authenticate: Bearer error="invalid_token"``)
whatever was wrong: the client learns nothing more, ``reason`` says why for logs.

A token's claims::

    iss, aud, sub (the principal's id), iat, nbf, exp, jti
    roles   a list, when the principal has roles
    scope   the scopes, space-separated (RFC 8693), when it has scopes
    kind    when it is not "user"
    ...     whatever ``extra`` added (kept in ``Principal.claims``)
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from tenfold._context import Principal
from tenfold._errors import Unauthorized
from tenfold.auth._keys import ALGORITHMS, KeySet, PublicKey

__all__ = [
    "MAX_TOKEN_LENGTH",
    "REGISTERED_CLAIMS",
    "AccessTokens",
    "InvalidToken",
    "principal_from_claims",
]

#: Longer tokens are refused before anything is decoded (a real one is well under 1 KiB).
MAX_TOKEN_LENGTH = 8192

_DETAIL = "the access token is not valid"
_CHALLENGE = 'Bearer error="invalid_token"'
_TYP = "at+jwt"
#: Header members that point at keys or demand extensions: a token naming its own key (or
#: where to fetch one) must never be believed, and we implement no critical extension.
_REFUSED_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
_REQUIRED = ["exp", "iat", "nbf", "iss", "aud", "sub"]
#: Claims ``issue`` sets itself; ``extra`` may not override them and ``Principal.claims``
#: leaves them out.
REGISTERED_CLAIMS = frozenset({"iss", "aud", "sub", "iat", "nbf", "exp", "jti"})
_PRINCIPAL_CLAIMS = frozenset({"roles", "scope", "kind"})
_RESERVED = REGISTERED_CLAIMS | _PRINCIPAL_CLAIMS
#: Distinct accepted headers remembered; real traffic has one per key.
_HEADER_CACHE_SIZE = 64


class InvalidToken(Unauthorized):
    """An access token was sent but is not valid (expired, tampered, wrong key...).

    The client sees only a generic detail; ``reason`` says what was wrong, for
    logs, and never goes into the response.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(_DETAIL, challenge=_CHALLENGE)
        self.reason = reason


class AccessTokens:
    """Issues and verifies the access tokens of one issuer and audience.

    ``ttl`` is each token's lifetime in seconds; ``leeway`` the clock skew
    allowed on ``exp``, ``nbf`` and ``iat``. ``algorithm`` must be the key
    set's; tokens signed with any other are refused. ``clock`` gives epoch
    seconds (tests pass a ``tenfold.testing.ManualClock``).
    """

    __slots__ = (
        "_algorithm",
        "_algorithms",
        "_audience",
        "_clock",
        "_decoder",
        "_header_kids",
        "_issuer",
        "_keys",
        "_leeway",
        "_ttl",
    )

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        ttl: int = 900,
        leeway: int = 30,
        algorithm: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"the algorithm is one of {sorted(ALGORITHMS)}, not {algorithm!r}")
        if not issuer or not audience:
            raise ValueError("access tokens need an issuer and an audience")
        if ttl <= 0 or leeway < 0:
            raise ValueError("ttl is positive and leeway zero or more (seconds)")
        self._algorithm = algorithm
        self._algorithms = [algorithm]
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        self._leeway = leeway
        self._clock = clock
        # PyJWT reads the wall clock itself; the times are checked below against ``clock``.
        # Options fixed once: no merging per call.
        self._decoder = jwt.PyJWT(
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": _REQUIRED,
            }
        )
        self._header_kids: dict[str, str] = {}
        self.keys = keys

    def __repr__(self) -> str:
        return f"AccessTokens(issuer={self._issuer!r}, audience={self._audience!r}, {self._keys!r})"

    @property
    def keys(self) -> KeySet:
        """The key set tokens are signed and verified with; assign a new one after a rotation."""
        return self._keys

    @keys.setter
    def keys(self, keys: KeySet) -> None:
        if keys.algorithm != self._algorithm:
            raise ValueError(
                f"the key set holds {keys.algorithm} keys; the tokens use {self._algorithm}"
            )
        self._keys = keys
        self._header_kids = {}

    @property
    def ttl(self) -> int:
        """Seconds an issued token is valid."""
        return self._ttl

    @property
    def clock(self) -> Callable[[], float]:
        """The clock tokens are issued and checked against (epoch seconds)."""
        return self._clock

    def issue(self, principal: Principal, *, extra: Mapping[str, Any] | None = None) -> str:
        """A signed access token for ``principal``, valid for ``ttl`` seconds from now.

        ``extra`` adds claims (JSON values); it may not set the registered
        claims, ``roles``, ``scope`` or ``kind``, which come from the principal.
        """
        claims: dict[str, Any] = {}
        if extra:
            clash = _RESERVED.intersection(extra)
            if clash:
                raise ValueError(f"extra claims may not set {sorted(clash)}")
            claims.update(extra)
        now = int(self._clock())
        claims.update(
            iss=self._issuer,
            aud=self._audience,
            sub=principal.id,
            iat=now,
            nbf=now,
            exp=now + self._ttl,
            jti=secrets.token_urlsafe(16),
        )
        if principal.roles:
            claims["roles"] = sorted(principal.roles)
        if principal.scopes:
            if any(not scope or scope.split() != [scope] for scope in principal.scopes):
                raise ValueError("a scope is a non-empty word without spaces")
            claims["scope"] = " ".join(sorted(principal.scopes))
        if principal.kind != "user":
            claims["kind"] = principal.kind
        key = self._keys.active
        return jwt.encode(
            claims,
            key.private_key,
            algorithm=self._algorithm,
            headers={"kid": key.kid, "typ": _TYP},
        )

    def verify(self, token: str) -> Principal:
        """The principal ``token`` was issued for; ``InvalidToken`` if it is not valid now."""
        return principal_from_claims(self.decode(token))

    def decode(self, token: str) -> dict[str, Any]:
        """All claims of ``token`` once it is verified; ``InvalidToken`` if it is not valid now."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("not a string, or longer than MAX_TOKEN_LENGTH")
        now = self._clock()
        key = self._verification_key(token, now)
        try:
            claims: dict[str, Any] = self._decoder.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from None
        self._check_times(claims, now)
        return claims

    def _verification_key(self, token: str, now: float) -> PublicKey:
        # Tokens signed with one key share their header segment: remembering the segments
        # that passed saves parsing each header twice (here and in PyJWT).
        segment = token.partition(".")[0]
        kid = self._header_kids.get(segment)
        if kid is None:
            kid = self._checked_kid(token)
            if len(self._header_kids) >= _HEADER_CACHE_SIZE:
                self._header_kids.clear()
            self._header_kids[segment] = kid
        key = self._keys.verification_key(kid, now=now)
        if key is None:
            raise InvalidToken("the key of this kid has retired")
        return key

    def _checked_kid(self, token: str) -> str:
        """The header's kid, once the header is one of ours; InvalidToken otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from None
        if header.get("alg") != self._algorithm:
            raise InvalidToken("the alg is not the configured algorithm")
        if not _REFUSED_HEADERS.isdisjoint(header):
            raise InvalidToken("the header names a key, a key URL or a critical extension")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in (_TYP, "application/" + _TYP):
            raise InvalidToken("the typ is not at+jwt")
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._keys:
            raise InvalidToken("the kid is missing or unknown")
        return kid

    def _check_times(self, claims: Mapping[str, Any], now: float) -> None:
        exp, nbf, iat = claims["exp"], claims["nbf"], claims["iat"]
        if not (_is_time(exp) and _is_time(nbf) and _is_time(iat)):
            raise InvalidToken("exp, nbf and iat must be finite numbers")
        if now >= exp + self._leeway:
            raise InvalidToken("expired (exp)")
        if nbf > now + self._leeway:
            raise InvalidToken("not yet valid (nbf)")
        if iat > now + self._leeway:
            raise InvalidToken("issued in the future (iat)")


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """The ``Principal`` an access token's verified claims describe.

    ``claims`` keeps what is not a registered or principal claim (``extra``).
    """
    sub, roles = claims.get("sub"), claims.get("roles", ())
    scope, kind = claims.get("scope", ""), claims.get("kind", "user")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("sub must be a non-empty string")
    if not isinstance(roles, list | tuple) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("roles must be a list of strings")
    if not isinstance(scope, str) or not isinstance(kind, str) or not kind:
        raise InvalidToken("scope and kind must be strings")
    return Principal(
        sub,
        roles=frozenset(roles),
        scopes=frozenset(scope.split()),
        kind=kind,
        claims={k: v for k, v in claims.items() if k not in _RESERVED},
    )


def _is_time(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)
