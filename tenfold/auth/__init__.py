"""Identity and access: users, tokens, sessions, roles, API keys, OAuth accounts.

Under construction: the capability's pieces land one by one; see docs/security.md.
"""

from __future__ import annotations

from tenfold.auth._settings import AuthSettings

__all__ = ["AuthSettings"]
