"""`tenfold auth users`: the first admin from the command line, on the app's database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from tenfold.auth import Users
from tenfold.cli import cli

APP = "apps.brandranker.main:make_app()"


def test_create_then_change_roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "TENFOLD_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "TENFOLD_AUTH__PASSWORD_TIME_COST": "1",
        "TENFOLD_AUTH__PASSWORD_MEMORY_COST": "8",
        "TENFOLD_AUTH__PASSWORD_PARALLELISM": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    made = runner.invoke(
        cli,
        ["--app", APP, "auth", "users", "create", "--username", "root", "--role", "admin"],
        input="a long enough password\na long enough password\n",
        catch_exceptions=False,
    )
    assert made.exit_code == 0, made.output
    user_id = made.stdout.strip().splitlines()[-1]
    changed = runner.invoke(
        cli,
        ["--app", APP, "auth", "users", "roles", "--username", "ROOT", "--role", "analyst"],
        catch_exceptions=False,
    )
    assert changed.exit_code == 0, changed.output
    assert changed.stdout.strip().splitlines()[-1] == "analyst"
    missing = runner.invoke(cli, ["--app", APP, "auth", "users", "roles", "--username", "x"])
    assert missing.exit_code == 1
    assert "no account named 'x'" in missing.output

    from apps.brandranker.main import make_app

    async def check() -> None:
        app = make_app()
        async with app.router.lifespan_context(app):
            users = app.state.tenfold.get(Users)
            user = await users.authenticate("root", "a long enough password")
            assert user is not None
            assert (user.id, user.roles) == (user_id, ("analyst",))

    asyncio.run(check())
