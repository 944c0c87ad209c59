"""The `tenfold` command: settings errors, `check`, `db` migrations, `config-docs`."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from tenfold.cli import cli


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A clean TENFOLD_ environment in an empty working directory."""
    for name in list(os.environ):
        if name.startswith("TENFOLD_") and not name.startswith("TENFOLD_TEST_"):
            monkeypatch.delenv(name)
    # A command loads its --app fresh, as in its own process: an app module another test
    # imported (with that test's settings) must not stand in for it.
    for module in [m for m in sys.modules if m == "apps" or m.startswith("apps.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.chdir(tmp_path)
    return {}


ROOT = Path(__file__).resolve().parents[2]
CURSOR_SECRET = "cli-test-cursor-secret"


def invoke(args: list[str], env: dict[str, str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_bad_setting_exits_2_naming_the_variable(env: dict[str, str]) -> None:
    """An invalid setting ends any command with status 2 and the variable's name, no traceback."""
    env["TENFOLD_DB__POOL_SIZE"] = "many"
    result = invoke(["check"], env)
    assert result.exit_code == 2
    assert "TENFOLD_DB__POOL_SIZE" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("name", "value"),
    [("TENFOLD_DB__REPLICAS", "[x"), ("TENFOLD_CACHE__NAMESPACES", '{"a": ')],
)
def test_malformed_json_setting_exits_2_naming_the_variable(
    env: dict[str, str], name: str, value: str
) -> None:
    """A list or map setting whose JSON does not parse names its variable, status 2, no
    traceback, like every other setting error."""
    env[name] = value
    for command in (["check"], ["run", "--app-dir", str(ROOT), "--app", "apps.hello.main:app"]):
        result = CliRunner().invoke(cli, command, env=env)
        assert result.exit_code == 2, result.output
        assert f"{name}: is not valid JSON" in result.output
        assert "Traceback" not in result.output
        assert "SettingsError" not in result.output


def test_malformed_json_in_dotenv_is_named(env: dict[str, str]) -> None:
    """The same for a value read from .env."""
    Path(".env").write_text("TENFOLD_DB__REPLICAS=[x\n")
    result = CliRunner().invoke(cli, ["check"], env=env)
    assert result.exit_code == 2, result.output
    assert "TENFOLD_DB__REPLICAS: is not valid JSON" in result.output


def test_check_embedded_profile_is_ok(env: dict[str, str]) -> None:
    """With no settings, `check` reports the SQLite primary ok and exits 0."""
    result = invoke(["check"], env)
    assert result.exit_code == 0, result.output
    assert "embedded profile" in result.output
    assert "ok   db.primary" in result.output


def test_check_reports_primary_and_replica(env: dict[str, str], pg_cluster) -> None:  # type: ignore[no-untyped-def]
    """Against the harness primary and replica, `check` reports both and the replica's lag."""
    env["TENFOLD_DB__URL"] = pg_cluster.primary.url("postgres")
    env["TENFOLD_DB__CURSOR_SECRET"] = CURSOR_SECRET
    env["TENFOLD_DB__REPLICAS"] = f'["{pg_cluster.replica.url("postgres")}"]'
    result = invoke(["check"], env)
    assert result.exit_code == 0, result.output
    assert "ok   db.primary" in result.output
    assert "db.replica0" in result.output
    assert "lag" in result.output


def test_check_fails_on_unreachable_primary(env: dict[str, str]) -> None:
    """An unreachable primary makes `check` exit 1 with the address and the setting, no password."""
    env["TENFOLD_DB__URL"] = "postgresql://app:topsecret@127.0.0.1:1/app"
    env["TENFOLD_DB__CURSOR_SECRET"] = CURSOR_SECRET
    result = invoke(["check", "--timeout", "0.5"], env)
    assert result.exit_code == 1
    assert "127.0.0.1:1" in result.output
    assert "TENFOLD_DB__URL" in result.output
    assert "topsecret" not in result.output


def test_check_fails_what_run_refuses(env: dict[str, str]) -> None:
    """A Redis rate-limit backend with no Redis configured: `run` refuses it, so `check`
    fails it too, naming the settings, with the `overall:` line."""
    env["TENFOLD_RATELIMIT__BACKEND"] = "redis"
    result = invoke(["check"], env)
    assert result.exit_code == 2, result.output
    assert "TENFOLD_RATELIMIT__BACKEND" in result.output
    assert "TENFOLD_REDIS__URL" in result.output
    assert result.output.strip().splitlines()[-1] == "overall: failing"
    refused = invoke(["run", "--app-dir", str(ROOT), "--app", "apps.hello.main:app"], env)
    assert refused.exit_code == 2
    assert "TENFOLD_RATELIMIT__BACKEND" in refused.output


def test_postgres_without_a_cursor_secret_is_refused_at_startup(env: dict[str, str]) -> None:
    """With PostgreSQL configured and no cursor secret, `check` and `run` exit 2 naming it."""
    env["TENFOLD_DB__URL"] = "postgresql://app:topsecret@127.0.0.1:1/app"
    result = invoke(["check"], env)
    assert result.exit_code == 2, result.output
    assert "TENFOLD_DB__CURSOR_SECRET: must be set when the database is PostgreSQL" in (
        result.output
    )
    assert result.output.strip().splitlines()[-1] == "overall: failing"
    refused = invoke(["run", "--app-dir", str(ROOT), "--app", "apps.hello.main:app"], env)
    assert refused.exit_code == 2
    assert "TENFOLD_DB__CURSOR_SECRET" in refused.output
    assert "topsecret" not in result.output + refused.output


def test_check_reports_every_check_when_the_database_is_down(
    env: dict[str, str],
    redis_server,  # type: ignore[no-untyped-def]
) -> None:
    """With the primary down, the database fails and every other check still runs and is
    printed, then the `overall:` line."""
    env["TENFOLD_DB__URL"] = "postgresql://app:topsecret@127.0.0.1:1/app"
    env["TENFOLD_DB__CURSOR_SECRET"] = CURSOR_SECRET
    env["TENFOLD_REDIS__URL"] = redis_server.url
    result = invoke(["check", "--timeout", "0.5"], env)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert any(line.startswith("FAIL db") and "TENFOLD_DB__URL" in line for line in lines)
    for check in ("redis", "cache.redis", "ratelimit.redis"):
        assert any(line.startswith(f"ok   {check} ") for line in lines), result.output
    assert lines[-1] == "overall: failing"
    assert "topsecret" not in result.output


def test_check_reaches_redis(env: dict[str, str], redis_server) -> None:  # type: ignore[no-untyped-def]
    """A configured Redis is pinged; a stopped one fails the check."""
    env["TENFOLD_REDIS__URL"] = redis_server.url
    assert invoke(["check"], env).exit_code == 0
    redis_server.stop()
    result = invoke(["check", "--timeout", "0.5"], env)
    assert result.exit_code == 1
    assert "FAIL redis" in result.output


def test_db_migration_verbs_round_trip(env: dict[str, str]) -> None:
    """`db init`, `revision`, `upgrade`, `current` and `downgrade` work on the embedded database."""
    assert invoke(["db", "init"], env).exit_code == 0
    assert Path("migrations/env.py").exists()
    assert invoke(["db", "revision", "-m", "first"], env).exit_code == 0
    assert invoke(["db", "upgrade"], env).exit_code == 0
    head = invoke(["db", "current"], env).output.strip()
    assert head not in ("", "(none)")
    assert invoke(["db", "downgrade", "base"], env).exit_code == 0
    assert invoke(["db", "current"], env).output.strip() in ("", "(none)")


def test_db_autogenerate_imports_the_apps_models_from_the_working_directory(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`db` commands import the app's modules as `run` does: the template's own suggestion
    (import your models in env.py) works from the project root, and each verb says what
    it did."""
    package = f"bookmarks_{uuid.uuid4().hex[:8]}"  # a fresh module name: sys.modules persists
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "models.py").write_text(
        "from sqlalchemy import String\n"
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column\n\n\n"
        "class Base(DeclarativeBase):\n    pass\n\n\n"
        "class Bookmark(Base):\n"
        "    __tablename__ = 'bookmark'\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    url: Mapped[str] = mapped_column(String(2000))\n"
    )
    created = invoke(["db", "init"], env)
    assert created.exit_code == 0
    assert "created migrations/" in created.output
    env_py = Path("migrations/env.py")
    env_py.write_text(
        env_py.read_text().replace(
            "target_metadata = None",
            f"from {package}.models import Base\ntarget_metadata = Base.metadata",
        )
    )
    revision = invoke(["db", "revision", "--autogenerate", "-m", "bookmarks"], env)
    assert revision.exit_code == 0, revision.output
    script = Path(revision.output.split("created ", 1)[1].strip())
    assert "create_table('bookmark'" in script.read_text().replace('"', "'")
    upgraded = invoke(["db", "upgrade"], env)
    assert upgraded.exit_code == 0
    assert upgraded.output.startswith("upgraded: the database is at ")
    downgraded = invoke(["db", "downgrade", "base"], env)
    assert downgraded.output.strip() == "downgraded: the database is at (no revision)"


def test_db_env_import_error_is_one_clear_line(env: dict[str, str]) -> None:
    """A model import env.py cannot resolve is named, with the fix, not a traceback."""
    assert invoke(["db", "init"], env).exit_code == 0
    env_py = Path("migrations/env.py")
    env_py.write_text(
        env_py.read_text().replace("target_metadata = None", "import nosuchapp_models")
    )
    result = CliRunner().invoke(cli, ["db", "revision", "--autogenerate", "-m", "x"], env=env)
    assert result.exit_code == 1
    assert "could not import nosuchapp_models" in result.output
    assert "Traceback" not in result.output


def test_config_docs_prints_every_section(env: dict[str, str]) -> None:
    """`config-docs` prints the generated settings reference."""
    result = invoke(["config-docs"], env)
    assert result.exit_code == 0
    for section in ("TENFOLD_DB__URL", "TENFOLD_REDIS__URL", "TENFOLD_HEALTH__DRAIN_TIMEOUT"):
        assert section in result.output
