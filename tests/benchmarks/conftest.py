"""Make the repository's ``benchmarks`` package importable in these tests.

``benchmarks/`` sits beside ``tenfold/`` and is not installed, and pytest puts
only this folder on ``sys.path`` (it has no ``__init__.py``: one would make it a
package called ``benchmarks`` and shadow the real one).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parents[2])
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
