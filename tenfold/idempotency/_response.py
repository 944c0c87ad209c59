"""What is stored for a key: the first response's status, headers and body.

Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection, not the
response, so they are dropped. ``Set-Cookie`` is dropped too: a replay must
not hand a session (or any cookie the first call minted) to whoever holds
the key. Everything else, ``Content-Type`` and the handler's own headers
included, is replayed byte for byte.

The consistency token is not a header of the captured response (the
consistency middleware adds it on the way out), so it travels beside it: a
replay raises the request's token to ``consistency_token`` and the client that
lost the first response still reads its own write.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from tenfold._context import current_user_id, set_consistency_token
from tenfold._errors import TenfoldError

__all__ = ["REPLAYED_HEADER", "StoredResponse", "fingerprint", "scope_of"]

REPLAYED_HEADER = "Idempotent-Replayed"
_DROPPED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "set-cookie",
    }
)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response as stored: replaying it gives the same status, headers and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: The WAL position (LSN) the first attempt's writes reached, when known.
    consistency_token: int | None = None

    @classmethod
    def capture(cls, response: Response, consistency_token: int | None = None) -> StoredResponse:
        """The storable part of ``response``; streaming responses cannot be stored."""
        body = getattr(response, "body", None)
        if not isinstance(body, bytes):
            raise TenfoldError(
                f"{type(response).__name__} has no body to store: an idempotent route "
                "must return a complete response, not a stream"
            )
        headers = tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in response.raw_headers
            if name.decode("latin-1").lower() not in _DROPPED
        )
        return cls(response.status_code, headers, body, consistency_token)

    def to_response(self) -> Response:
        """The stored response, marked ``Idempotent-Replayed: true``.

        Raises the current consistency token to ``consistency_token``, so the
        response carries it (through ``ConsistencyMiddleware``) as the first did.
        """
        set_consistency_token(self.consistency_token)
        response = Response(content=self.body, status_code=self.status)
        response.raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.headers
        ]
        response.raw_headers.append((REPLAYED_HEADER.lower().encode("latin-1"), b"true"))
        return response


def fingerprint(request: Request, body: bytes) -> str:
    """sha256 over method, path and the body's sha256: what "the same request" means."""
    digest = hashlib.sha256()
    digest.update(f"{request.method}\n{request.url.path}\n".encode())
    digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()


def scope_of(request: Request, api_key_header: str) -> str | None:
    """Whose key this is: the user, else the API key (hashed), else ``None``."""
    user = current_user_id()
    if user is not None:
        owner = f"user:{user}"
    else:
        api_key = request.headers.get(api_key_header)
        if not api_key:
            return None
        owner = "api-key:" + hashlib.sha256(api_key.encode()).hexdigest()
    return hashlib.sha256(owner.encode()).hexdigest()
