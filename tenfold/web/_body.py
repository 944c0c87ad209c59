"""Request bodies held to their limits while they are read.

``LimitedBody`` wraps ``receive``: it counts the bytes of a body sent without
``Content-Length`` (or longer than announced, which servers forbid anyway)
and stops the read with a 413 as soon as the count passes the limit, so a
chunked upload is never read whole. A JSON body is checked for depth and
string length when its last chunk arrives, before the application parses it.

The refusals are ``HTTPException``\\ s raised from ``receive``: FastAPI passes
those through its body reading unchanged, and the problem handlers (or
``ProblemMiddleware``, for middleware that reads the body) answer them as
problem+json with the request id.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from tenfold.web._json import json_excess

__all__ = ["LimitedBody", "body_too_large", "is_json"]

_JSON = b"application/json"


def body_too_large(limit: int) -> HTTPException:
    # Closing the connection keeps the server from reading (or the client from sending)
    # the rest of a body nobody will look at.
    return HTTPException(
        413,
        detail=f"The request body is larger than {limit} bytes.",
        headers={"Connection": "close"},
    )


def is_json(content_type: bytes) -> bool:
    """Whether a Content-Type is JSON as FastAPI reads it: application/json or */*+json."""
    media = content_type.partition(b";")[0].strip().lower()
    return media == _JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


class LimitedBody:
    """``receive`` with the body counted against ``limit`` and, for JSON, checked at its end."""

    __slots__ = ("chunks", "json", "limit", "receive", "seen")

    def __init__(self, receive: Receive, limit: int, json: tuple[int, int] | None) -> None:
        self.receive = receive
        self.limit = limit
        #: (max depth, max string length) while a JSON body is still to be checked.
        self.json = json
        self.chunks: list[bytes] = []
        self.seen = 0

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] != "http.request":
            return message
        body = message.get("body", b"")
        if body:
            self.seen += len(body)
            if self.seen > self.limit:
                raise body_too_large(self.limit)
            if self.json is not None:
                self.chunks.append(body)
        if self.json is not None and not message.get("more_body", False):
            self._check_json()
        return message

    def _check_json(self) -> None:
        chunks, self.chunks = self.chunks, []
        limits, self.json = self.json, None
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        excess = json_excess(data, *limits) if data else None  # type: ignore[misc]
        if excess is not None:
            raise HTTPException(400, detail=excess)
