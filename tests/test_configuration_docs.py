"""docs/configuration.md is generated from the Settings model and must match it."""

from __future__ import annotations

from pathlib import Path

from tenfold import Settings
from tenfold._settings_doc import settings_reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_configuration_doc_is_current() -> None:
    """The committed reference equals what `tenfold config-docs` prints today."""
    assert DOC.read_text() == settings_reference(), (
        "docs/configuration.md is stale: "
        "run `.venv/bin/tenfold config-docs > docs/configuration.md`"
    )


def test_every_setting_is_documented() -> None:
    """Each field of each settings section appears as a TENFOLD_ variable in the doc."""
    text = DOC.read_text()
    for section, info in Settings.model_fields.items():
        sub = info.annotation
        fields = getattr(sub, "model_fields", None)
        if fields is None:
            assert f"`TENFOLD_{section.upper()}`" in text
            continue
        for name in fields:
            assert f"`TENFOLD_{section.upper()}__{name.upper()}`" in text
