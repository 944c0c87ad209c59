"""``TokenCipher``: encrypts secrets kept at rest (provider tokens) with rotating Fernet keys."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from tenfold._errors import ConfigurationError

__all__ = ["TokenCipher"]

_SETTING = "TENFOLD_AUTH__TOKEN_ENCRYPTION_KEYS"


class TokenCipher:
    """Fernet (AES-128-CBC with HMAC-SHA256) over comma-separated keys, newest first.

    The first key encrypts; every key decrypts, so a key is rotated by putting
    a new one in front and removing the old one once nothing it encrypted is
    left (``rotate`` re-encrypts a value with the first key; a refreshed
    provider token is re-encrypted anyway). Make a key with
    ``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``.
    """

    def __init__(self, keys: str | SecretStr) -> None:
        raw = keys.get_secret_value() if isinstance(keys, SecretStr) else keys
        parts = [k.strip() for k in raw.split(",") if k.strip()]
        if not parts:
            raise ValueError("no Fernet key given")
        fernets = []
        for position, key in enumerate(parts, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                # The key itself stays out of the message: it is a secret.
                raise ValueError(
                    f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self.key_count = len(fernets)

    def __repr__(self) -> str:
        return f"<TokenCipher keys={self.key_count}>"

    @classmethod
    def from_settings(cls, settings: Any) -> TokenCipher:
        """The cipher of ``AuthSettings.token_encryption_keys``.

        Raises ``ConfigurationError`` naming ``TENFOLD_AUTH__TOKEN_ENCRYPTION_KEYS``
        when it is missing or holds something that is not a Fernet key.
        """
        keys = getattr(settings, "token_encryption_keys", None)
        if (
            keys is None
            or not (keys.get_secret_value() if isinstance(keys, SecretStr) else keys).strip()
        ):
            raise ConfigurationError(
                f"{_SETTING} is required to keep OAuth tokens encrypted; set it to one or "
                "more Fernet keys, newest first",
                setting=_SETTING,
            )
        try:
            return cls(keys)
        except ValueError as exc:
            raise ConfigurationError(f"{_SETTING}: {exc}", setting=_SETTING) from None

    def encrypt(self, plaintext: str) -> str:
        """``plaintext`` encrypted with the first key (a URL-safe ASCII string)."""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext of a value ``encrypt`` made with any of the keys.

        A value no key opens means a key still in use was removed: that is a
        ``ConfigurationError`` naming the setting, not the caller's fault.
        """
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise ConfigurationError(
                f"a stored secret cannot be decrypted with any key of {_SETTING}; "
                "was the key that encrypted it removed?",
                setting=_SETTING,
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """``ciphertext`` re-encrypted with the first key."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise ConfigurationError(
                f"a stored secret cannot be decrypted with any key of {_SETTING}",
                setting=_SETTING,
            ) from None
