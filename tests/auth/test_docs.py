"""docs/security.md lists every `TENFOLD_AUTH__*` setting as the settings reference has it."""

from __future__ import annotations

from pathlib import Path

from tenfold import CoreSettings
from tenfold._builtins import Settings
from tenfold._settings_doc import settings_reference
from tenfold.auth import AuthSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def rendered_table() -> str:
    composed = CoreSettings.compose([*Settings.sections.items(), ("auth", AuthSettings)])
    reference = settings_reference(composed)
    return reference[reference.index("## `auth`") :].split("\n\n", 1)[1].strip()


def test_the_auth_settings_table_is_current() -> None:
    """The table in docs/security.md equals the auth section of `tenfold config-docs`."""
    text = DOC.read_text()
    start = text.index("<!-- auth-settings")
    end = text.index("<!-- /auth-settings -->")
    documented = text[text.index("\n", start) + 1 : end].strip()
    assert documented == rendered_table(), "update the table in docs/security.md from `config-docs`"
