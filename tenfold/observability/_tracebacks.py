"""Tracebacks for logs, without the data a database driver quotes.

A driver's message can quote what it refused: the row (``Failing row
contains (...)``), a key (``Key (email)=(...) already exists``), the bad
parameter itself. A ``DatabaseError`` keeps the driver's exception as
``__cause__`` for code that inspects it, but in a log the exceptions under a
``DatabaseError`` show their frames and type only; the ``DatabaseError``'s
own message and ``context`` (driver class, SQLSTATE, statement text) say what
happened. Every other exception is formatted as Python formats it.
"""

from __future__ import annotations

import traceback

from tenfold._errors import DatabaseError

__all__ = ["format_exception"]

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_WITHHELD = "(message withheld from logs: a database driver's message may quote row values)"


def format_exception(exc: BaseException) -> str:
    """``exc`` and its chain as ``traceback.format_exception`` would, minus driver messages."""
    links = _links(exc)
    # Everything inside (after, in this outermost-first list) a DatabaseError is withheld.
    cut = next((i for i, (link, _) in enumerate(links) if isinstance(link, DatabaseError)), None)
    parts: list[str] = []
    for index in range(len(links) - 1, -1, -1):  # a traceback prints the innermost first
        link, joiner = links[index]
        parts.extend(_format_one(link, withhold=cut is not None and index > cut))
        parts.append(joiner)
    return "".join(parts).rstrip("\n")


def _links(exc: BaseException) -> list[tuple[BaseException, str]]:
    """The chain, outermost first, each with the line that joins it to the one outside it."""
    links: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    joiner = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        links.append((current, joiner))
        if current.__cause__ is not None:
            current, joiner = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, joiner = current.__context__, _CONTEXT
        else:
            current = None
    return links


def _format_one(exc: BaseException, *, withhold: bool) -> list[str]:
    if not withhold:
        return traceback.format_exception(type(exc), exc, exc.__traceback__, chain=False)
    lines = traceback.format_tb(exc.__traceback__)
    head = ["Traceback (most recent call last):\n"] if lines else []
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return [*head, *lines, f"{name}: {_WITHHELD}\n"]
