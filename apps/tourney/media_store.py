"""Where the tournament's photos are kept: content-addressed keys and the ``MediaStore`` port.

Every stored object is named by the SHA-256 of its bytes plus the extension
of its format, ``<64 hex digits>.<jpg|png|webp>``. Such a key never changes
meaning, so its URL can be cached for ever (``immutable``), the same photo
uploaded twice is stored once, and a key that is not of that form is refused
before any backend sees it: no path, no ``..``, nothing to traverse.

    MediaStore           the Protocol: ``put``, ``get``, ``exists`` (async)
    LocalMediaStore      files under a directory (``var/media`` by default):
                         the embedded profile's store, and a single host's
    media_key(data, ext) the key of ``data``; ``check_key(key)`` validates one
    CONTENT_TYPES        the Content-Type of each extension

An S3-compatible store (AWS S3, MinIO, Cloudflare R2) is the intended
backend for several app instances: it would implement the same three
methods over an async S3 client, with the key as the object name and
``Content-Type`` and ``Cache-Control: public, max-age=31536000, immutable``
set on upload so a CDN can serve the bucket directly. **It is not built**:
until it is, run one instance or share ``TENFOLD_MEDIA__ROOT`` between
instances (a network volume), since every instance must read what any
instance stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

__all__ = [
    "CONTENT_TYPES",
    "LocalMediaStore",
    "MediaStore",
    "check_key",
    "content_type_of",
    "media_key",
]

#: The formats the app stores, by key extension.
CONTENT_TYPES: Mapping[str, str] = MappingProxyType(
    {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
)
_KEY = re.compile(r"[0-9a-f]{64}\.(?:jpg|png|webp)")


def media_key(data: bytes, ext: str) -> str:
    """The content address of ``data`` stored as ``ext``: ``<sha256 hex>.<ext>``."""
    if ext not in CONTENT_TYPES:
        raise ValueError(f"unknown media extension {ext!r}; known: {sorted(CONTENT_TYPES)}")
    return f"{hashlib.sha256(data).hexdigest()}.{ext}"


def check_key(key: str) -> bool:
    """Whether ``key`` is a well-formed content address (lowercase hex, a known extension)."""
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


def content_type_of(key: str) -> str:
    """The Content-Type of a well-formed ``key``."""
    return CONTENT_TYPES[key.rsplit(".", 1)[1]]


class MediaStore(Protocol):
    """Bytes under content-addressed keys. Writes are idempotent: a key names one content.

    Implementations refuse a key that ``check_key`` refuses with ``ValueError``.
    """

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key`` (a no-op when the key is already stored)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        ...


class LocalMediaStore:
    """A ``MediaStore`` of files under ``root``, fanned out as ``ab/cd/<key>``.

    Writes go to a temporary file in the target directory and are renamed into
    place, so a reader never sees half a file and two writers of one key both
    succeed. File I/O runs in a worker thread, off the event loop. The
    Content-Type is not kept: it follows from the key's extension.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalMediaStore({str(self.root)!r})"

    def path_of(self, key: str) -> Path:
        """The file of ``key``; ``ValueError`` for a malformed key (never a path outside root)."""
        if not check_key(key):
            raise ValueError("a media key is <sha256 hex>.<jpg|png|webp>")
        return self.root / key[:2] / key[2:4] / key

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self.path_of(key), data)

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(_read, self.path_of(key))

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_of(key).is_file)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.is_file():
            return  # content-addressed: the same key is the same bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
