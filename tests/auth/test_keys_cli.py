"""``tenfold auth keys``: new, rotate, prune and show on a key file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from tenfold.auth import AuthSettings
from tenfold.auth._keys import KeySet
from tenfold.auth._keys_cli import auth_group


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(auth_group, ["keys", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_new_writes_a_private_file_the_settings_read(tmp_path: Path, algorithm: str) -> None:
    """new writes a 0600 file with one key that TENFOLD_AUTH__KEYS_FILE loads."""
    path = tmp_path / "keys.json"
    code, output = run("new", "--file", str(path), "--algorithm", algorithm)
    assert code == 0, output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = KeySet.from_settings(AuthSettings(keys_file=path, algorithm=algorithm))
    assert keys.active.kid in output
    assert len(keys.keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]


def test_new_does_not_overwrite_without_force(tmp_path: Path) -> None:
    """new refuses an existing file unless --force is given."""
    path = tmp_path / "keys.json"
    run("new", "--file", str(path))
    before = path.read_text()
    code, output = run("new", "--file", str(path))
    assert code != 0
    assert "exists" in output
    assert path.read_text() == before
    assert run("new", "--file", str(path), "--force")[0] == 0
    assert path.read_text() != before


def test_rotate_then_prune(tmp_path: Path) -> None:
    """rotate adds a new active key and keeps the old one with a retire_at; prune keeps it
    until then."""
    path = tmp_path / "keys.json"
    run("new", "--file", str(path))
    first = json.loads(path.read_text())["active"]
    code, output = run("rotate", "--file", str(path), "--overlap", "3600")
    assert code == 0, output
    document = json.loads(path.read_text())
    assert document["active"] != first
    assert [k["kid"] for k in document["keys"]] == [document["active"], first]
    assert "retire_at" in document["keys"][1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run("prune", "--file", str(path))[0] == 0
    assert len(json.loads(path.read_text())["keys"]) == 2
    run("rotate", "--file", str(path), "--overlap", "0")
    assert run("prune", "--file", str(path)) == (0, f"{path}: 1 retired key(s) removed\n")
    assert len(json.loads(path.read_text())["keys"]) == 2


def test_show_prints_the_public_jwks(tmp_path: Path) -> None:
    """show prints public keys only."""
    path = tmp_path / "keys.json"
    run("new", "--file", str(path))
    code, output = run("show", "--file", str(path))
    assert code == 0
    document = json.loads(output)
    assert [k["kid"] for k in document["keys"]] == [json.loads(path.read_text())["active"]]
    assert "d" not in document["keys"][0]


def test_missing_or_broken_file_is_an_error_message(tmp_path: Path) -> None:
    """A missing or invalid file ends the command with a message, not a traceback."""
    path = tmp_path / "keys.json"
    code, output = run("show", "--file", str(path))
    assert code == 1
    assert "does not exist" in output
    path.write_text('{"active": "x", "keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}')
    code, output = run("rotate", "--file", str(path), "--overlap", "10")
    assert code == 1
    assert "not valid" in output
