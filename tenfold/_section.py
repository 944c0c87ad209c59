"""The base of every settings section, and the list/map reader sections share.

Kept apart from ``_settings`` so that a kernel section defined in its own
module (``_http_settings``) and the composed settings can both import it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["SettingsSection", "json_or_text"]


class SettingsSection(BaseModel):
    """Base of a settings section: unknown keys are errors, values are frozen.

    An extension's section subclasses this; its fields become
    ``TENFOLD_<SECTION>__<FIELD>`` variables. A section that can point at a
    server says so with a ``distributed`` property (the profile reads it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def json_or_text(value: Any) -> Any:
    """A value that may be JSON (``[...]``/``{...}``) or plain text, as a section reads it."""
    if isinstance(value, str) and value.strip().startswith(("[", "{")):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not valid JSON: {exc}") from None
    return value
