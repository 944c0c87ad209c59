"""A platform around objects a test built itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenfold._platform import Platform

__all__ = ["attach_platform"]


def attach_platform(app: Any, *objects: Any) -> Platform:
    """Give ``app`` a platform (no extensions) providing ``objects``; returns it.

    For tests that wire a FastAPI app by hand around a ``Database`` or ``Cache``
    they made: the dependencies (``DbSession``, ``CacheDep``...) find them by type.
    Starting and stopping the objects stays the test's job.
    """
    from tenfold._platform import Platform

    platform = Platform.build(builtins=False, configure_logs=False)
    for obj in objects:
        platform.provide(obj)
    app.state.tenfold = platform
    return platform
