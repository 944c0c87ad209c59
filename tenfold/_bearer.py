"""``bearer_matches``: whether a request carries a configured bearer token."""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.requests import HTTPConnection

__all__ = ["bearer_matches"]


def bearer_matches(connection: HTTPConnection, token: SecretStr | str | None) -> bool:
    """Whether ``connection`` carries ``Authorization: Bearer <token>`` (constant time).

    No token configured means nobody matches.
    """
    if token is None:
        return False
    expected = token.get_secret_value() if isinstance(token, SecretStr) else token
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())
