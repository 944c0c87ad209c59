"""Errors the harness raises; they are about the test machine, not about tenfold."""

from __future__ import annotations

__all__ = ["HarnessError", "MissingBinary", "NotManaged"]


class HarnessError(RuntimeError):
    """A harness server could not be started, reached or controlled."""


class MissingBinary(HarnessError):
    """A server binary the harness needs is not installed.

    The message names the binary and what to install. The pytest plugin turns
    it into a skip, or into a failure when ``CI=true``.
    """

    def __init__(self, binary: str, install_hint: str, searched: list[str]) -> None:
        where = ", ".join(searched) or "(nowhere)"
        super().__init__(f"{binary} not found (searched {where}); {install_hint}")
        self.binary = binary
        self.install_hint = install_hint


class NotManaged(HarnessError):
    """A break-helper was called on an external server the harness does not own.

    Inside a test the pytest plugin turns it into a skip with this message.
    """
