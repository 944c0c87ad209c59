"""Finding the server binaries on this machine.

``TENFOLD_TEST_BIN_PATH`` (directories joined by ``os.pathsep``) replaces the
whole search: the harness then looks only there. Tests of the harness point it
at an empty directory to see what happens when nothing is installed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from tenfold.testing._errors import MissingBinary

__all__ = ["BIN_PATH_ENV", "find_binary", "find_pg_bindir"]

BIN_PATH_ENV = "TENFOLD_TEST_BIN_PATH"
MIN_PG_VERSION = 15
_PG_ROOT = Path("/usr/lib/postgresql")
_PG_TOOLS = ("postgres", "initdb", "pg_basebackup", "pg_isready", "psql")

_INSTALL_HINTS = {
    "redis-server": "install it with `apt-get install -y redis-server`",
    "redis-cli": "install it with `apt-get install -y redis-tools`",
    "pgbouncer": "install it with `apt-get install -y pgbouncer`",
    "nginx": "install it with `apt-get install -y nginx` (scripts/ensure-servers.sh does)",
    "rabbitmq-server": "install it with `apt-get install -y rabbitmq-server` "
    "(or point TENFOLD_TEST_RABBITMQ_URL at a running broker)",
}


def _override_dirs() -> list[Path] | None:
    raw = os.environ.get(BIN_PATH_ENV)
    if raw is None:
        return None
    return [Path(p) for p in raw.split(os.pathsep) if p]


def find_binary(name: str, *, prefer: Sequence[Path] = ()) -> Path:
    """Return the path of executable *name*, or raise ``MissingBinary``.

    The directories in *prefer* are searched before PATH (not when
    ``TENFOLD_TEST_BIN_PATH`` replaces the search).
    """
    dirs = _override_dirs()
    if dirs is None:
        preferred = os.pathsep.join(map(str, prefer))
        found = (preferred and shutil.which(name, path=preferred)) or (
            shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
        )
        searched = [*map(str, prefer), "PATH", "/usr/sbin"]
    else:
        found = shutil.which(name, path=os.pathsep.join(map(str, dirs)))
        searched = [str(d) for d in dirs]
    if found is None:
        hint = _INSTALL_HINTS.get(name, f"install the package that provides {name}")
        raise MissingBinary(name, hint, searched)
    return Path(found)


def find_pg_bindir() -> Path:
    """Return the bin directory of the highest installed PostgreSQL >= 15."""
    dirs = _override_dirs()
    if dirs is None:
        versions = sorted(
            (int(p.name), p / "bin")
            for p in (_PG_ROOT.iterdir() if _PG_ROOT.is_dir() else [])
            if re.fullmatch(r"\d+", p.name) and int(p.name) >= MIN_PG_VERSION
        )
        candidates = [bindir for _, bindir in reversed(versions)]
        searched = [f"{_PG_ROOT}/<version >= {MIN_PG_VERSION}>/bin"]
    else:
        candidates, searched = dirs, [str(d) for d in dirs]
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in _PG_TOOLS):
            return bindir
    raise MissingBinary(
        f"PostgreSQL >= {MIN_PG_VERSION} server binaries ({', '.join(_PG_TOOLS)})",
        "install them with `apt-get install -y postgresql` "
        "(or point TENFOLD_TEST_PG_PRIMARY at a running server)",
        searched,
    )
