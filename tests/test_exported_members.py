"""Each package's ``__all__`` is its whole public surface, and is honest."""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = [
    "tenfold",
    "tenfold.cache",
    "tenfold.cli",
    "tenfold.db",
    "tenfold.health",
    "tenfold.httpcache",
    "tenfold.idempotency",
    "tenfold.jobs",
    "tenfold.events",
    "tenfold.ratelimit",
    "tenfold.realtime",
    "tenfold.redis",
    "tenfold.resilience",
    "tenfold.observability",
    "tenfold.testing",
    "tenfold.web",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist(name: str) -> None:
    """Every name in __all__ can be imported from the package."""
    module = importlib.import_module(name)
    missing = [member for member in module.__all__ if not hasattr(module, member)]
    assert missing == []


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_are_exported(name: str) -> None:
    """Every public, non-module attribute of the package is listed in __all__."""
    module = importlib.import_module(name)
    public = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_")
        and not isinstance(value, types.ModuleType)
        and member not in {"annotations", "TYPE_CHECKING", "Any"}
    }
    assert public - set(module.__all__) == set()


@pytest.mark.parametrize("name", PACKAGES)
def test_implementation_modules_are_private(name: str) -> None:
    """Sub-modules holding implementation are private (leading underscore)."""
    module = importlib.import_module(name)
    import pkgutil

    public_modules = [
        info.name
        for info in pkgutil.iter_modules(module.__path__)
        if not info.name.startswith("_") and not info.ispkg
    ]
    # tenfold.db.migrations is a deliberate public module: the CLI's verbs.
    assert [m for m in public_modules if f"{name}.{m}" not in {"tenfold.db.migrations"}] == []
