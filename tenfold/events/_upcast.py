"""Upcasters: old versions of an event's data migrated to the current one on read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenfold._errors import ConfigurationError

__all__ = ["Upcast", "Upcasters"]

#: Takes the data of one schema version, returns the data of the next.
Upcast = Callable[[dict[str, Any]], dict[str, Any]]


class Upcasters:
    """Per event type, one function per schema version step (1 -> 2, 2 -> 3...).

        upcasters = Upcasters()

        @upcasters.register("ScoreUpdated", 1)
        def _(data):                      # version 1 had one "score" field
            return {"home": data["score"], "away": 0}

    A type's current version is one past its last registered step; new
    events of that type are written at it. Stored events are never
    rewritten: they are upcast each time they are read.
    """

    def __init__(self) -> None:
        self._steps: dict[str, dict[int, Upcast]] = {}

    def __repr__(self) -> str:
        return f"<Upcasters {sorted(self._steps)}>"

    def register(self, type: str, from_version: int) -> Callable[[Upcast], Upcast]:
        """Decorator: ``fn`` turns ``type``'s data at ``from_version`` into ``from_version + 1``."""
        if from_version < 1:
            raise ConfigurationError(f"upcaster of {type!r}: versions start at 1")

        def add(fn: Upcast) -> Upcast:
            steps = self._steps.setdefault(type, {})
            if from_version in steps:
                raise ConfigurationError(f"two upcasters of {type!r} from version {from_version}")
            steps[from_version] = fn
            return fn

        return add

    def current(self, type: str) -> int:
        """The schema version new events of ``type`` are written at."""
        steps = self._steps.get(type)
        return max(steps) + 1 if steps else 1

    def check(self) -> None:
        """Every type's steps run without a hole from 1 (the store calls it once)."""
        for type, steps in self._steps.items():
            missing = set(range(1, max(steps) + 1)) - set(steps)
            if missing:
                raise ConfigurationError(
                    f"upcasters of {type!r} miss the step(s) from version(s) {sorted(missing)}"
                )

    def upcast(self, type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(current version, data) for an event stored at ``version``."""
        steps = self._steps.get(type)
        if not steps:
            return version, data
        while version in steps:
            data = steps[version](data)
            version += 1
        return version, data
