"""The Host header allow-list of ``TENFOLD_HTTP__ALLOWED_HOSTS``.

A request for a host the app does not serve (a scanner using the bare IP, a
DNS-rebinding page) is refused before anything else looks at it. Patterns are
exact names or ``*.domain`` (any subdomain, not the domain itself); the port
is not part of the match. Verdicts are remembered per header value: behind a
load balancer a handful of values recur.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["AllowedHosts"]

_REMEMBERED = 1024


class AllowedHosts:
    """Whether a raw Host header value names one of ``patterns``."""

    __slots__ = ("_exact", "_seen", "_suffixes")

    def __init__(self, patterns: Sequence[str]) -> None:
        self._exact = frozenset(p for p in patterns if not p.startswith("*."))
        self._suffixes = tuple(p[1:] for p in patterns if p.startswith("*."))  # ".example.com"
        self._seen: dict[bytes | None, bool] = {}

    def __repr__(self) -> str:
        return f"<AllowedHosts {sorted(self._exact) + ['*' + s for s in self._suffixes]}>"

    def __call__(self, raw: bytes | None) -> bool:
        found = self._seen.get(raw)
        if found is None:
            found = raw is not None and self._matches(_host(raw))
            if len(self._seen) >= _REMEMBERED:  # random Host values must not grow memory
                self._seen.clear()
            self._seen[raw] = found
        return found

    def _matches(self, host: str) -> bool:
        return host in self._exact or (bool(host) and host.endswith(self._suffixes))


def _host(raw: bytes) -> str:
    text = raw.decode("latin-1").strip().lower()
    if text.startswith("["):  # an IPv6 literal, "[::1]:8000"
        return text[: text.find("]") + 1] if "]" in text else ""
    return text.partition(":")[0].rstrip(".")
