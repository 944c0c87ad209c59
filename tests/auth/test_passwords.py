"""Passwords: argon2id hashes, verification that refuses quietly, rehash detection, threads."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from argon2 import PasswordHasher

from tenfold.auth._passwords import Passwords
from tenfold.auth._settings import AuthSettings

#: Cheap parameters: the tests check behaviour, not cost.
FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


class CountingHasher(PasswordHasher):
    """A real hasher that records the hashes it verified against, and on which thread."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.verified: list[str] = []
        self.threads: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(str(hash))
        self.threads.append(threading.current_thread().name)
        return super().verify(hash, password)


@pytest.fixture
def passwords() -> Passwords:
    return Passwords(**FAST)


def test_hash_is_argon2id_with_the_given_parameters(passwords: Passwords) -> None:
    """A hash is an argon2id PHC string carrying the configured cost, salted each time."""
    first = passwords.hash("s3cret")
    assert first.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert passwords.hash("s3cret") != first


def test_verify_true_false_and_malformed(passwords: Passwords) -> None:
    """The right password verifies; a wrong one or a malformed hash gives False, no error."""
    hashed = passwords.hash("s3cret")
    assert passwords.verify(hashed, "s3cret") is True
    assert passwords.verify(hashed, "S3cret") is False
    assert passwords.verify("not a hash", "s3cret") is False
    assert passwords.verify("$argon2id$v=19$m=8,t=1,p=1$garbage", "s3cret") is False
    assert passwords.verify("", "s3cret") is False


def test_needs_rehash_after_a_parameter_change(passwords: Passwords) -> None:
    """A hash made with other parameters (or a malformed one) needs a rehash; its own don't."""
    hashed = passwords.hash("s3cret")
    assert passwords.needs_rehash(hashed) is False
    stronger = Passwords(time_cost=2, memory_cost=16, parallelism=1)
    assert stronger.needs_rehash(hashed) is True
    assert stronger.verify(hashed, "s3cret") is True  # old hashes still verify
    assert passwords.needs_rehash("garbage") is True


def test_verify_nothing_verifies_against_a_fixed_dummy() -> None:
    """verify_nothing runs a real verification, always against the same dummy hash."""
    hashers: list[CountingHasher] = []

    def factory(**kw: Any) -> CountingHasher:
        hashers.append(CountingHasher(**kw))
        return hashers[-1]

    passwords = Passwords(**FAST, hasher_factory=factory)
    passwords.verify_nothing("guess")
    passwords.verify_nothing("another guess")
    (hasher,) = hashers
    assert len(hasher.verified) == 2
    assert hasher.verified[0] == hasher.verified[1]
    assert hasher.verified[0].startswith("$argon2id$v=19$m=8,t=1,p=1$")


async def test_async_variants_run_off_the_event_loop() -> None:
    """hash_async/verify_async/verify_nothing_async run on the pool's threads, not the loop's."""
    hashers: list[CountingHasher] = []

    def factory(**kw: Any) -> CountingHasher:
        hashers.append(CountingHasher(**kw))
        return hashers[-1]

    passwords = Passwords(**FAST, concurrency=2, hasher_factory=factory)
    try:
        hashed = await passwords.hash_async("s3cret")
        assert await passwords.verify_async(hashed, "s3cret") is True
        assert await passwords.verify_async(hashed, "wrong") is False
        await passwords.verify_nothing_async("s3cret")
    finally:
        passwords.close()
    loop_thread = threading.current_thread().name
    assert hashers[0].threads
    assert all(name.startswith("argon2") for name in hashers[0].threads)
    assert loop_thread not in hashers[0].threads


async def test_concurrency_is_bounded() -> None:
    """However many verifications are awaited at once, at most ``concurrency`` run together."""
    running = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    class Slow(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            release.wait(5)
            with lock:
                running -= 1
            return super().verify(hash, password)

    passwords = Passwords(**FAST, concurrency=2, hasher_factory=Slow)
    hashed = passwords.hash("s3cret")
    try:
        tasks = [asyncio.create_task(passwords.verify_async(hashed, "s3cret")) for _ in range(6)]
        while True:  # until the pool is full: two verifications blocked in the hasher
            with lock:
                if running == 2:
                    break
            await asyncio.sleep(0.01)
        release.set()
        assert await asyncio.gather(*tasks) == [True] * 6
    finally:
        release.set()
        passwords.close()
    assert peak == 2


def test_from_settings_uses_the_password_fields() -> None:
    """from_settings takes TENFOLD_AUTH__PASSWORD_* as the argon2 parameters."""
    settings = AuthSettings(password_time_cost=2, password_memory_cost=16, password_parallelism=1)
    passwords = Passwords.from_settings(settings)
    assert passwords.hash("x").startswith("$argon2id$v=19$m=16,t=2,p=1$")
    assert repr(passwords).startswith("Passwords(time_cost=2, memory_cost=16, parallelism=1")
