"""Request ids: 32 hex digits, unique without a system call per request.

Half of each id is random per process (drawn again in a forked child, so
workers forked from one parent never share it), half is a counter. Ids are
meant to correlate, not to be secret.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["new_request_id"]


class _IdSource:
    __slots__ = ("counter", "prefix")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(int.from_bytes(os.urandom(6), "big"))


_source = _IdSource()
os.register_at_fork(after_in_child=_source.reseed)


def new_request_id() -> str:
    """A fresh 32-hex-digit id."""
    # A 48-bit random start leaves 2**63 ids before the counter outgrows 8 bytes.
    return _source.prefix + next(_source.counter).to_bytes(8, "big").hex()
