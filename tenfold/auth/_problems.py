"""How the auth errors are answered (a ``tenfold.web.ProblemRegistry`` table).

Every refusal of a credential is a 401 with its ``WWW-Authenticate`` challenge and a
generic detail: the client learns that its credential did not work, never why (the
reason is logged). A failed CSRF check is a 403.
"""

from __future__ import annotations

from collections.abc import Mapping

from tenfold._errors import TenfoldError, Unauthorized
from tenfold.auth._apikeys import InvalidApiKey
from tenfold.auth._authenticate import CsrfFailed
from tenfold.auth._oauth_model import (
    OAuthAccountNotFound,
    OAuthAccountRevoked,
    OAuthCodeRejected,
    OAuthProviderUnavailable,
    OAuthStateError,
)
from tenfold.auth._refresh import InvalidRefreshToken, RefreshTokenReused
from tenfold.auth._tokens import InvalidToken
from tenfold.web import Problem, ProblemEntry, retry_after_header

__all__ = ["PROBLEMS"]

_T = "https://tenfold.dev/problems/"
PROVIDER_UNAVAILABLE = "The account's provider is unavailable. Retry shortly."


def _challenge(exc: Unauthorized) -> dict[str, str]:
    return {"WWW-Authenticate": exc.challenge}


PROBLEMS: Mapping[type[TenfoldError], ProblemEntry] = {
    InvalidToken: Problem(401, "Unauthorized", type=_T + "invalid-token", headers=_challenge),
    InvalidApiKey: Problem(401, "Unauthorized", type=_T + "invalid-api-key", headers=_challenge),
    InvalidRefreshToken: Problem(
        401, "Unauthorized", type=_T + "invalid-refresh-token", headers=_challenge
    ),
    RefreshTokenReused: Problem(
        401, "Unauthorized", type=_T + "invalid-refresh-token", headers=_challenge
    ),
    CsrfFailed: Problem(403, "Forbidden", type=_T + "csrf-failed"),
    OAuthStateError: Problem(400, "Bad Request", type=_T + "oauth-state"),
    OAuthCodeRejected: Problem(400, "Bad Request", type=_T + "oauth-code-rejected"),
    OAuthAccountNotFound: Problem(404, "Not Found", type=_T + "not-found"),
    OAuthAccountRevoked: Problem(409, "Conflict", type=_T + "oauth-account-revoked"),
    OAuthProviderUnavailable: Problem(
        503,
        "Service Unavailable",
        type=_T + "oauth-provider-unavailable",
        headers=retry_after_header(),
        detail=PROVIDER_UNAVAILABLE,
    ),
}
