"""Kernel tests run in a clean TENFOLD_ environment, in an empty working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TENFOLD_ variables (but the harness's), and ./var in a temporary directory."""
    for name in list(os.environ):
        if name.startswith("TENFOLD_") and not name.startswith("TENFOLD_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
