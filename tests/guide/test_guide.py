"""docs/guide.md works as written: its project is built from the page, migrated and tested."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide.md"
BIN = Path(sys.executable).parent
# A fenced block that is a file of the project: ```python file=bookmarks/app.py
FILE_BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _files() -> dict[str, str]:
    return {path: body for path, body in FILE_BLOCK.findall(GUIDE.read_text())}


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{output[-5000:]}"
    return output


def test_the_guide_names_every_file_of_its_project() -> None:
    """The page carries the models, the app, env.py, pyproject and the tests."""
    assert set(_files()) >= {
        "pyproject.toml",
        "bookmarks/models.py",
        "bookmarks/app.py",
        "migrations/env.py",
        "tests/conftest.py",
        "tests/test_bookmarks.py",
    }


def test_the_guide_project_migrates_and_its_tests_pass(tmp_path: Path) -> None:
    """tenfold db init / revision --autogenerate / upgrade, then the guide's own tests."""
    files = _files()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENFOLD_", "PYTHONPATH"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    for path, body in files.items():
        if not path.startswith("migrations/"):
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(body)
    assert "created migrations" in _run(["tenfold", "db", "init"], tmp_path, env)
    (tmp_path / "migrations" / "env.py").write_text(files["migrations/env.py"])
    made = _run(["tenfold", "db", "revision", "--autogenerate", "-m", "bookmarks"], tmp_path, env)
    assert "created" in made
    [revision] = (tmp_path / "migrations" / "versions").glob("*_bookmarks.py")
    assert "create_table('bookmarks'" in revision.read_text().replace('"', "'")
    assert "upgraded" in _run(["tenfold", "db", "upgrade"], tmp_path, env)
    report = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"], tmp_path, env)
    assert re.search(r"\b5 passed\b", report), report[-3000:]
