"""Opaque, tamper-evident pagination cursors.

A cursor is ``base64url(HMAC-SHA256(secret, scope + payload) + payload)``
where the payload is compact JSON ``{"v": [values], "d": "n"|"p"}``. The
scope (the sort key, or the paginator's ``name``) is signed but not sent, so a
cursor from one listing is refused by another. A cursor that was changed,
truncated, signed with another secret or is not base64 raises
``InvalidCursor`` (400).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import SecretStr

from tenfold._errors import InvalidCursor

__all__ = ["Cursor", "CursorCodec"]

_MAC_LEN = 32
_MAX_CURSOR_CHARS = 2048
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Cursor:
    """The decoded contents of a cursor: sort-key values and which way to page."""

    values: tuple[Any, ...]
    direction: Literal["next", "prev"] = "next"


def _to_json(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"dec": str(value)}
    if isinstance(value, uuid.UUID):
        return {"u": value.hex}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot put a {type(value).__name__} in a cursor")


def _from_json(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ValueError("bad tagged value")
    ((tag, raw),) = value.items()
    decoders = {
        "dt": dt.datetime.fromisoformat,
        "d": dt.date.fromisoformat,
        "dec": Decimal,
        "u": uuid.UUID,
    }
    if tag not in decoders or not isinstance(raw, str):
        raise ValueError("bad tagged value")
    return decoders[tag](raw)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Signs and verifies cursors with HMAC-SHA256."""

    def __init__(self, secret: str | bytes | SecretStr) -> None:
        if isinstance(secret, SecretStr):
            secret = secret.get_secret_value()
        key = secret.encode("utf-8") if isinstance(secret, str) else secret
        if not key:
            raise ValueError("the cursor secret must not be empty")
        self._key = key

    def _mac(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self._key, scope.encode("utf-8") + b"\0" + payload, hashlib.sha256).digest()

    def encode(self, cursor: Cursor, *, scope: str = "") -> str:
        body = {"v": [_to_json(v) for v in cursor.values], "d": cursor.direction[0]}
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        return _b64encode(self._mac(scope, payload) + payload)

    def decode(self, token: str, *, scope: str = "") -> Cursor:
        """The cursor in ``token``; ``InvalidCursor`` if it is not one we signed."""
        # Python's base64 decoder skips characters outside the alphabet; refuse them.
        if (
            not isinstance(token, str)
            or len(token) > _MAX_CURSOR_CHARS
            or not _ALPHABET.fullmatch(token)
        ):
            raise InvalidCursor("the cursor is not valid")
        try:
            raw = _b64decode(token)
        except (binascii.Error, ValueError):
            raise InvalidCursor("the cursor is not valid") from None
        mac, payload = raw[:_MAC_LEN], raw[_MAC_LEN:]
        if len(mac) != _MAC_LEN or not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise InvalidCursor("the cursor is not valid")
        try:
            body = json.loads(payload)
            values = tuple(_from_json(v) for v in body["v"])
            direction = {"n": "next", "p": "prev"}[body["d"]]
        except (ValueError, KeyError, TypeError, InvalidOperation):
            # Signed by us but unreadable: an old format or a bug, still the client's 400.
            raise InvalidCursor("the cursor is not valid") from None
        return Cursor(values, direction)  # type: ignore[arg-type]
