"""docs/testing.md's reference names every public helper and fixture of tenfold.testing."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import tenfold.testing
from tenfold.testing import _plugin

DOC = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()


@pytest.mark.parametrize("name", tenfold.testing.__all__)
def test_every_public_name_is_in_the_reference(name: str) -> None:
    """Each name of tenfold.testing.__all__ appears in docs/testing.md."""
    assert f"`{name}" in DOC, name


def test_every_fixture_is_in_the_reference() -> None:
    """Each fixture the pytest plugin defines (but its private ones) has a table row."""
    fixtures = [
        name
        for name, obj in inspect.getmembers(_plugin)
        if hasattr(obj, "_fixture_function_marker")
        or type(obj).__name__ == "FixtureFunctionDefinition"
    ]
    public = [name for name in fixtures if not name.startswith("_")]
    assert {"pg_cluster", "embedded_settings", "fault_proxy"} <= set(public)
    for name in public:
        assert f"| `{name}` |" in DOC, name
