"""``Passwords``: argon2id hashing, verification that never raises for a wrong password.

    passwords = Passwords.from_settings(settings.auth)
    hashed = await passwords.hash_async("correct horse")
    if await passwords.verify_async(hashed, attempt): ...

Hashing costs tens of milliseconds of CPU and memory_cost KiB of RAM per call,
by design. The ``*_async`` methods run it on a small thread pool of this
object's own (``concurrency`` threads): the event loop stays free, and a flood
of logins queues for those threads instead of taking every thread of the
loop's default executor (which DNS lookups and file I/O also need). The sync
methods are for CLIs and scripts.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

if TYPE_CHECKING:
    from tenfold.auth._settings import AuthSettings

__all__ = ["Passwords"]

T = TypeVar("T")

#: Builds the argon2 hasher from the cost parameters (tests wrap one to count its calls).
HasherFactory = Callable[..., PasswordHasher]


def _default_concurrency() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class Passwords:
    """argon2id password hashes with the given cost (``time_cost`` passes over
    ``memory_cost`` KiB in ``parallelism`` lanes).

    Hashes made with other parameters still verify; ``needs_rehash`` says when
    one should be replaced (``Users.authenticate`` does so at the next login).
    ``verify_nothing`` spends a verification's work against a dummy hash made
    here, so a login for an unknown user costs what a known one does.
    ``concurrency`` bounds how many hashes the ``*_async`` methods run at once.
    """

    def __init__(
        self,
        time_cost: int = 3,
        memory_cost: int = 65536,
        parallelism: int = 4,
        *,
        concurrency: int | None = None,
        hasher_factory: HasherFactory = PasswordHasher,
    ) -> None:
        self.time_cost = time_cost
        self.memory_cost = memory_cost
        self.parallelism = parallelism
        self.concurrency = concurrency or _default_concurrency()
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._hasher = hasher_factory(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=Type.ID,
        )
        # Same parameters as real hashes, so verifying against it costs the same.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: AuthSettings, *, concurrency: int | None = None) -> Passwords:
        """The hasher ``TENFOLD_AUTH__PASSWORD_*`` describe."""
        return cls(
            settings.password_time_cost,
            settings.password_memory_cost,
            settings.password_parallelism,
            concurrency=concurrency,
        )

    def __repr__(self) -> str:
        return (
            f"Passwords(time_cost={self.time_cost}, memory_cost={self.memory_cost}, "
            f"parallelism={self.parallelism}, concurrency={self.concurrency})"
        )

    # -- sync: for CLIs and scripts ------------------------------------------------------

    def hash(self, password: str) -> str:
        """A new argon2id hash of ``password`` (salted: two calls give different hashes)."""
        return self._hasher.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        """Whether ``password`` matches ``hashed``; False (never an error) for a wrong
        password or a hash that is not an argon2 hash."""
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        """Whether ``hashed`` was made with other parameters than these (or is malformed)."""
        try:
            return self._hasher.check_needs_rehash(hashed)
        except InvalidHashError:
            return True

    def verify_nothing(self, password: str) -> None:
        """Spend the work of one verification, for a user that does not exist."""
        self.verify(self._dummy, password)

    # -- async: off the event loop, at most ``concurrency`` at once ----------------------

    async def hash_async(self, password: str) -> str:
        """``hash`` in a thread of this object's pool."""
        return await self._in_thread(self.hash, password)

    async def verify_async(self, hashed: str, password: str) -> bool:
        """``verify`` in a thread of this object's pool."""
        return await self._in_thread(self.verify, hashed, password)

    async def verify_nothing_async(self, password: str) -> None:
        """``verify_nothing`` in a thread of this object's pool."""
        await self._in_thread(self.verify_nothing, password)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="argon2")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Let the pool's threads end once their work is done (a later call starts a new pool)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
