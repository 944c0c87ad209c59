"""``tenfold auth keys``: create, rotate, prune and show a signing key file.

The file is the private JWKS document ``TENFOLD_AUTH__KEYS_FILE`` names. It
is always written whole, beside the old one and renamed over it, with mode
0600, so a process starting meanwhile reads the old file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

from tenfold._errors import ConfigurationError
from tenfold.auth._keys import ALGORITHMS, KeySet
from tenfold.cli import fail

__all__ = ["auth_group", "write_key_file"]

_FILE = click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The key file (TENFOLD_AUTH__KEYS_FILE).",
)


@click.group("auth")
def auth_group() -> None:
    """Identity and access."""


@auth_group.group("keys")
def keys_group() -> None:
    """The keys that sign access tokens."""


@keys_group.command("new")
@_FILE
@click.option(
    "--algorithm",
    type=click.Choice(sorted(ALGORITHMS)),
    default="EdDSA",
    show_default=True,
    help="Must match TENFOLD_AUTH__ALGORITHM.",
)
@click.option("--force", is_flag=True, help="Replace an existing file (its keys are lost).")
def new(path: Path, algorithm: str, force: bool) -> None:
    """Create a key file with one new signing key."""
    if path.exists() and not force:
        fail(f"{path} exists; rotate its keys with `tenfold auth keys rotate`, or pass --force")
    keys = KeySet.generate(algorithm)
    write_key_file(path, keys)
    click.echo(f"{path}: new {algorithm} key {keys.active.kid}")


@keys_group.command("rotate")
@_FILE
@click.option(
    "--overlap",
    type=click.FloatRange(min=0),
    required=True,
    help="Seconds the current key keeps verifying (at least the access token TTL + leeway).",
)
def rotate(path: Path, overlap: float) -> None:
    """Make a new signing key; the current one verifies for --overlap more seconds.

    Each process reads the file when it starts: restart them all within the
    overlap, so that every one knows the new key.
    """
    keys = _read(path).rotate(overlap=overlap)
    write_key_file(path, keys)
    click.echo(
        f"{path}: new active key {keys.active.kid}; {keys.keys[1].kid} retires in {overlap:g} s"
    )


@keys_group.command("prune")
@_FILE
def prune(path: Path) -> None:
    """Remove the keys whose overlap has ended."""
    keys = _read(path)
    pruned = keys.prune()
    write_key_file(path, pruned)
    click.echo(f"{path}: {len(keys.keys) - len(pruned.keys)} retired key(s) removed")


@keys_group.command("show")
@_FILE
def show(path: Path) -> None:
    """Print the public JWKS (what may be published; no private part)."""
    click.echo(json.dumps(_read(path).jwks(), indent=2))


def _read(path: Path) -> KeySet:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path} does not exist; create it with `tenfold auth keys new --file {path}`")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path} cannot be read ({type(exc).__name__})")
    try:
        return KeySet.from_json(text)
    except ConfigurationError as exc:
        fail(f"{path}: {exc.message}")


def write_key_file(path: Path, keys: KeySet) -> None:
    """Write ``keys``' private document to ``path`` atomically, readable by its owner only."""
    text = json.dumps(keys.to_json(), indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file with mode 0600: the secret is never readable by others.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
