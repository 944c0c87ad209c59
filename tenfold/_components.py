"""The component protocol and the ordered start/stop of a platform's parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import structlog

__all__ = ["Component", "ComponentGroup"]

_log = structlog.get_logger("tenfold.lifecycle")


@runtime_checkable
class Component(Protocol):
    """Something with a lifetime: a pool, a cache, a worker, a checker."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ComponentGroup:
    """Starts components in the order given and stops the started ones in reverse.

    If one fails to start, those already started are stopped before the error
    propagates, so a failed boot leaves no pool or task behind.
    """

    def __init__(self, components: Sequence[Component]) -> None:
        names = [c.name for c in components]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"component names must be unique: {sorted(duplicates)}")
        self._components = list(components)
        self._started: list[Component] = []

    @property
    def names(self) -> list[str]:
        return [c.name for c in self._components]

    async def start(self, *, keep_going: bool = False) -> dict[str, Exception]:
        """Start every component in order.

        By default the first failure stops those already started and propagates. With
        ``keep_going=True`` (diagnostics: ``tenfold check``) a component that fails is
        skipped and the rest still start; the failures are returned by component name.
        """
        failed: dict[str, Exception] = {}
        for component in self._components:
            try:
                await component.start()
            except Exception as exc:
                if not keep_going:
                    await self.stop()
                    raise
                failed[component.name] = exc
                _log.debug("component_failed", component=component.name, error=str(exc))
                continue
            except BaseException:
                await self.stop()
                raise
            self._started.append(component)
            _log.debug("component_started", component=component.name)
        return failed

    async def stop(self) -> None:
        errors: list[BaseException] = []
        while self._started:
            component = self._started.pop()
            try:
                await component.stop()
            except Exception as exc:  # keep stopping the rest; report below
                errors.append(exc)
                _log.error("component_stop_failed", component=component.name, exc_info=exc)
            else:
                _log.debug("component_stopped", component=component.name)
        if errors:
            raise ExceptionGroup("components failed to stop", errors)
