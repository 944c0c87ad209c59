"""docs/events.md lists every `TENFOLD_EVENTS__*` setting as the settings reference renders it."""

from __future__ import annotations

from pathlib import Path

from tenfold import CoreSettings
from tenfold._builtins import Settings
from tenfold._settings_doc import settings_reference
from tenfold.events import EventsSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def rendered_table() -> str:
    composed = CoreSettings.compose([*Settings.sections.items(), ("events", EventsSettings)])
    reference = settings_reference(composed)
    return reference[reference.index("## `events`") :].split("\n\n", 1)[1].strip()


def test_the_events_settings_table_is_current() -> None:
    """The table in docs/events.md equals the events section of `tenfold config-docs`."""
    text = DOC.read_text()
    start = text.index("<!-- events-settings")
    documented = text[text.index("\n", start) + 1 : text.index("<!-- /events-settings -->")].strip()
    assert documented == rendered_table(), "update the table in docs/events.md from `config-docs`"
