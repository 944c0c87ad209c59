"""docs/realtime.md lists every `TENFOLD_REALTIME__*` setting as the settings reference has it."""

from __future__ import annotations

from pathlib import Path

from tenfold import CoreSettings
from tenfold._builtins import Settings
from tenfold._settings_doc import settings_reference
from tenfold.realtime import RealtimeSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "realtime.md"


def rendered_table() -> str:
    composed = CoreSettings.compose([*Settings.sections.items(), ("realtime", RealtimeSettings)])
    reference = settings_reference(composed)
    return reference[reference.index("## `realtime`") :].split("\n\n", 1)[1].strip()


def test_the_realtime_settings_table_is_current() -> None:
    """The table in docs/realtime.md equals the realtime section of `tenfold config-docs`."""
    text = DOC.read_text()
    start = text.index("<!-- realtime-settings")
    end = text.index("<!-- /realtime-settings -->")
    documented = text[text.index("\n", start) + 1 : end].strip()
    assert documented == rendered_table(), "update the table in docs/realtime.md from `config-docs`"
