"""docs/jobs.md lists every `TENFOLD_JOBS__*` setting as the settings reference renders it."""

from __future__ import annotations

from pathlib import Path

from tenfold import CoreSettings
from tenfold._builtins import Settings
from tenfold._settings_doc import settings_reference
from tenfold.jobs import JobsSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"


def test_the_jobs_settings_table_is_current() -> None:
    """The table in docs/jobs.md equals the jobs section of `tenfold config-docs` for an app."""
    composed = CoreSettings.compose([*Settings.sections.items(), ("jobs", JobsSettings)])
    reference = settings_reference(composed)
    rendered = reference[reference.index("## `jobs`") :].split("\n\n", 1)[1].strip()
    text = DOC.read_text()
    start = text.index("<!-- jobs-settings")
    documented = text[text.index("\n", start) + 1 : text.index("<!-- /jobs-settings -->")].strip()
    assert documented == rendered, "update the table in docs/jobs.md from `config-docs`"
