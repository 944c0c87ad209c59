"""The keys that sign and verify access tokens: ``SigningKey`` and ``KeySet``.

A key set holds one active key, which signs, and the keys it replaced, which
only verify until their ``retire_at``: a rotation makes a new active key and
keeps the old one for an overlap, so tokens issued just before the rotation
stay valid until they expire. The set is kept as a *private* JWKS document::

    {"active": "<kid>", "keys": [{"kty": "OKP", "crv": "Ed25519", "x": ..., "d": ...,
                                  "alg": "EdDSA", "kid": "<kid>", "created_at": ...,
                                  "retire_at": ...}, ...]}

and published as a public JWKS (``jwks()``) for whoever verifies tokens
elsewhere. Only asymmetric keys of the configured algorithm are accepted:
EdDSA (Ed25519) or ES256 (P-256).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeAlias

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from tenfold._errors import ConfigurationError
from tenfold.auth._settings import AuthSettings
from tenfold.observability import get_logger

__all__ = ["ALGORITHMS", "KeySet", "PrivateKey", "PublicKey", "SigningKey", "new_kid"]

_log = get_logger("tenfold.auth")

PrivateKey: TypeAlias = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

#: The algorithms a key set may hold, with the JWK ``kty`` and ``crv`` each needs.
ALGORITHMS: Mapping[str, tuple[str, str]] = {"EdDSA": ("OKP", "Ed25519"), "ES256": ("EC", "P-256")}

_JWK_CODEC = {"EdDSA": OKPAlgorithm, "ES256": ECAlgorithm}
_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SETTING_KEYS = "TENFOLD_AUTH__KEYS"
_SETTING_FILE = "TENFOLD_AUTH__KEYS_FILE"


def new_kid() -> str:
    """A fresh key id: random and URL-safe, never derived from anything a client sends."""
    return secrets.token_urlsafe(12)


def _generate_private(algorithm: str) -> PrivateKey:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"the algorithm is EdDSA or ES256, not {algorithm!r}")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One asymmetric key: ``kid``, ``algorithm``, the key objects and its lifetime.

    ``retire_at`` (epoch seconds) is when a replaced key stops verifying;
    None for the active key and for keys that never retire.
    """

    kid: str
    algorithm: str
    private_key: PrivateKey = field(repr=False)
    public_key: PublicKey = field(repr=False)
    created_at: float
    retire_at: float | None = None

    @classmethod
    def generate(cls, algorithm: str, *, now: float) -> SigningKey:
        """A new key of ``algorithm`` (``EdDSA`` or ``ES256``) with a random ``kid``."""
        private = _generate_private(algorithm)
        return cls(new_kid(), algorithm, private, private.public_key(), created_at=now)

    def verifies_at(self, now: float) -> bool:
        """Whether tokens signed with this key are still accepted at ``now``."""
        return self.retire_at is None or now < self.retire_at

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK with ``kid``, ``alg`` and ``use`` (no private members)."""
        jwk = _JWK_CODEC[self.algorithm].to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def private_jwk(self) -> dict[str, Any]:
        """The private JWK as the key set document keeps it (holds the secret ``d``)."""
        jwk = _JWK_CODEC[self.algorithm].to_jwk(self.private_key, as_dict=True)
        doc = {**jwk, "kid": self.kid, "alg": self.algorithm, "created_at": self.created_at}
        if self.retire_at is not None:
            doc["retire_at"] = self.retire_at
        return doc


class KeySet:
    """The active signing key plus the verification-only keys it replaced.

    Immutable: ``rotate()`` and ``prune()`` return a new set. ``clock``
    (epoch seconds) decides which replaced keys still verify.
    """

    __slots__ = ("_by_kid", "_clock", "active", "algorithm", "keys")

    def __init__(
        self,
        active: SigningKey,
        previous: Iterable[SigningKey] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        keys = (active, *previous)
        if active.retire_at is not None:
            raise ValueError("the active key cannot have a retire_at")
        if any(key.algorithm != active.algorithm for key in keys):
            raise ValueError("all keys of a key set use the same algorithm")
        by_kid = {key.kid: key for key in keys}
        if len(by_kid) != len(keys):
            raise ValueError("two keys of the key set have the same kid")
        self.active = active
        self.keys: tuple[SigningKey, ...] = keys
        self.algorithm = active.algorithm
        self._by_kid = by_kid
        self._clock = clock

    def __repr__(self) -> str:
        return f"KeySet({self.algorithm}, active={self.active.kid!r}, keys={len(self.keys)})"

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    @classmethod
    def generate(cls, algorithm: str, *, clock: Callable[[], float] = time.time) -> KeySet:
        """A set with one new active key of ``algorithm`` (``EdDSA`` or ``ES256``)."""
        return cls(SigningKey.generate(algorithm, now=clock()), clock=clock)

    def rotate(self, *, overlap: float) -> KeySet:
        """A new active key; the current one verifies for ``overlap`` more seconds.

        Make ``overlap`` at least the access tokens' lifetime plus the leeway,
        so that tokens signed just before the rotation stay valid until they expire.
        """
        if overlap < 0:
            raise ValueError("the overlap is a number of seconds, zero or more")
        now = self._clock()
        retiring = replace(self.active, retire_at=now + overlap)
        new = SigningKey.generate(self.algorithm, now=now)
        return KeySet(new, (retiring, *self.keys[1:]), clock=self._clock)

    def prune(self) -> KeySet:
        """The set without the keys whose ``retire_at`` has passed."""
        now = self._clock()
        kept = [key for key in self.keys[1:] if key.verifies_at(now)]
        return KeySet(self.active, kept, clock=self._clock)

    def verification_key(self, kid: object, *, now: float | None = None) -> PublicKey | None:
        """The public key of ``kid``, or None if no key has that id or it has retired.

        ``kid`` is only ever a key of this set's table, never a path or a URL.
        """
        key = self._by_kid.get(kid) if isinstance(kid, str) else None
        if key is None:
            return None
        if key.retire_at is not None and (self._clock() if now is None else now) >= key.retire_at:
            return None
        return key.public_key

    def jwks(self) -> dict[str, Any]:
        """The public JWKS of the keys that still verify: ``{"keys": [...]}``, no private member."""
        now = self._clock()
        return {"keys": [key.public_jwk() for key in self.keys if key.verifies_at(now)]}

    def to_json(self) -> dict[str, Any]:
        """The private JWKS document (``from_json`` reads it back). It holds secrets."""
        return {"active": self.active.kid, "keys": [key.private_jwk() for key in self.keys]}

    @classmethod
    def from_json(
        cls,
        document: str | bytes | Mapping[str, Any],
        *,
        algorithm: str | None = None,
        setting: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> KeySet:
        """Read a private JWKS document (text or already parsed).

        ``algorithm`` is the one every key must have (default: the active
        key's). A document that is not valid, or not safe to sign with, is a
        ``ConfigurationError`` naming ``setting``. Messages never quote key
        material.
        """
        return _DocumentReader(setting, clock).read(document, algorithm)

    @classmethod
    def from_settings(
        cls, settings: AuthSettings, *, clock: Callable[[], float] = time.time
    ) -> KeySet:
        """The key set of ``TENFOLD_AUTH__KEYS`` or ``TENFOLD_AUTH__KEYS_FILE``.

        Without either, a key of this process's own: tokens it signs are
        refused by every other process, so several processes need a shared
        key file (``tenfold auth keys new --file PATH``). Reads the file
        (blocking), so call it at startup.
        """
        if settings.keys is not None and settings.keys_file is not None:
            raise ConfigurationError(
                "set either TENFOLD_AUTH__KEYS or TENFOLD_AUTH__KEYS_FILE, not both",
                setting=_SETTING_KEYS,
            )
        if settings.keys is not None:
            return cls.from_json(
                settings.keys.get_secret_value(),
                algorithm=settings.algorithm,
                setting=_SETTING_KEYS,
                clock=clock,
            )
        if settings.keys_file is not None:
            text = _read_key_file(settings.keys_file)
            return cls.from_json(
                text, algorithm=settings.algorithm, setting=_SETTING_FILE, clock=clock
            )
        _log.warning(
            "auth_keys_generated",
            hint="each process made its own signing key; with several processes, share one "
            "key file (tenfold auth keys new --file PATH, then TENFOLD_AUTH__KEYS_FILE)",
        )
        return cls.generate(settings.algorithm, clock=clock)


def _read_key_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigurationError(
            f"the key file {path} does not exist; create it with "
            f"`tenfold auth keys new --file {path}`",
            setting=_SETTING_FILE,
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"the key file {path} cannot be read ({type(exc).__name__})", setting=_SETTING_FILE
        ) from None
    if mode & 0o077:
        # Secret mounts are often 0644 inside a container; refusing would stop those apps.
        _log.warning("auth_key_file_readable", path=str(path), mode=oct(mode & 0o777))
    return text


@dataclass(frozen=True, slots=True)
class _DocumentReader:
    """Validates a private JWKS document, raising ``ConfigurationError`` naming ``setting``."""

    setting: str | None
    clock: Callable[[], float]

    def fail(self, problem: str) -> ConfigurationError:
        where = f"{self.setting}: " if self.setting else ""
        return ConfigurationError(
            f"{where}the signing keys are not valid: {problem}", setting=self.setting
        )

    def read(self, document: str | bytes | Mapping[str, Any], algorithm: str | None) -> KeySet:
        if isinstance(document, str | bytes):
            try:
                document = json.loads(document)
            except (ValueError, RecursionError):
                raise self.fail("not a JSON document") from None
        if not isinstance(document, Mapping):
            raise self.fail('expected an object {"active": kid, "keys": [...]}')
        active, entries = document.get("active"), document.get("keys")
        if not isinstance(entries, list) or not entries:
            raise self.fail('"keys" must be a non-empty list of private JWKs')
        if not isinstance(active, str):
            raise self.fail('"active" must name the kid of the signing key')
        if algorithm is None:
            found = next(
                (e for e in entries if isinstance(e, Mapping) and e.get("kid") == active), None
            )
            algorithm = found.get("alg") if found is not None else None
        if algorithm not in ALGORITHMS:
            raise self.fail(f"the algorithm must be one of {sorted(ALGORITHMS)}")
        keys: dict[str, SigningKey] = {}
        for index, entry in enumerate(entries):
            key = self.key(index, entry, algorithm)
            if key.kid in keys:
                raise self.fail(f"two keys have the kid {key.kid!r}")
            keys[key.kid] = key
        if active not in keys:
            raise self.fail(f'no key has the "active" kid {active!r}')
        if keys[active].retire_at is not None:
            raise self.fail("the active key has a retire_at")
        current = keys.pop(active)
        return KeySet(current, keys.values(), clock=self.clock)

    def key(self, index: int, entry: object, algorithm: str) -> SigningKey:
        if not isinstance(entry, Mapping):
            raise self.fail(f"key {index} is not a JWK object")
        kid = entry.get("kid")
        if not isinstance(kid, str) or not _KID.match(kid):
            raise self.fail(f"key {index} needs a kid of 1-64 URL-safe characters")
        kty, crv = ALGORITHMS[algorithm]
        if entry.get("kty") == "oct":
            raise self.fail(f"key {kid!r} is a symmetric (oct) key; use {algorithm} keys")
        if entry.get("alg") != algorithm:
            raise self.fail(f"key {kid!r} is not an {algorithm} key (the configured algorithm)")
        if entry.get("kty") != kty or entry.get("crv") != crv:
            raise self.fail(f"key {kid!r} must have kty {kty!r} and crv {crv!r}")
        if entry.get("use", "sig") != "sig":
            raise self.fail(f"key {kid!r} is not a signing key (use)")
        if not isinstance(entry.get("d"), str):
            raise self.fail(f"key {kid!r} has no private part (d)")
        created_at, retire_at = entry.get("created_at", 0.0), entry.get("retire_at")
        if not _is_number(created_at) or not (retire_at is None or _is_number(retire_at)):
            raise self.fail(f"key {kid!r}: created_at and retire_at are epoch seconds")
        try:
            private = jwt.PyJWK(dict(entry), algorithm=algorithm).key
        except (jwt.PyJWTError, ValueError, TypeError):
            # PyJWT's messages quote the whole JWK, private part included.
            raise self.fail(f"key {kid!r} is not a valid {algorithm} private key") from None
        if not isinstance(private, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise self.fail(f"key {kid!r} is not a valid {algorithm} private key")
        return SigningKey(
            kid,
            algorithm,
            private,
            private.public_key(),
            created_at=float(created_at),
            retire_at=None if retire_at is None else float(retire_at),
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
