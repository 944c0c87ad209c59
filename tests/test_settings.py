"""Settings: typed, read once, and failing at startup with the variable's name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tenfold import ConfigurationError, Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("TENFOLD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_the_embedded_profile() -> None:
    """With nothing set, the profile is embedded on SQLite with no Redis."""
    settings = Settings.load()
    assert settings.profile == "embedded"
    assert settings.db.is_sqlite
    assert not settings.redis.enabled


def test_postgres_url_switches_to_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A libpq PostgreSQL URL is upgraded to asyncpg and makes the profile distributed."""
    monkeypatch.setenv("TENFOLD_DB__URL", "postgresql://app:pw@db.internal:5432/app")
    monkeypatch.setenv("TENFOLD_DB__CURSOR_SECRET", "s3cr3t-value-long-enough")
    settings = Settings.load()
    assert settings.db.url.get_secret_value().startswith("postgresql+asyncpg://")
    assert settings.profile == "distributed"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("TENFOLD_DB__POOL_SIZE", "zero", "valid integer"),
        ("TENFOLD_DB__POOL_SIZE", "0", "greater than or equal to 1"),
        ("TENFOLD_DB__URL", "mysql://x/y", "not supported"),
        ("TENFOLD_DB__REPLICA_POLICY", "random", "round_robin"),
        ("TENFOLD_REDIS__URL", "http://cache", "redis://"),
        ("TENFOLD_PORT", "70000", "less than or equal"),
        ("TENFOLD_HEALTH__CHECK_TIMEOUT", "-1", "greater than 0"),
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    """An invalid value raises ConfigurationError whose message and .setting name the variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        Settings.load()
    assert info.value.setting == variable
    assert variable in str(info.value)
    assert fragment in str(info.value)


def test_unknown_nested_key_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt nested variable is an error, not silently ignored."""
    monkeypatch.setenv("TENFOLD_DB__POOLSIZE", "5")
    with pytest.raises(ConfigurationError, match="TENFOLD_DB__POOLSIZE"):
        Settings.load()


def test_replicas_need_a_postgres_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replicas with a SQLite primary are refused at startup."""
    monkeypatch.setenv("TENFOLD_DB__REPLICAS", '["postgresql://r/app"]')
    with pytest.raises(ConfigurationError, match="TENFOLD_DB"):
        Settings.load()


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Database passwords and the cursor secret are masked in repr and str."""
    monkeypatch.setenv("TENFOLD_DB__URL", "postgresql://app:hunter2@db/app")
    monkeypatch.setenv("TENFOLD_DB__CURSOR_SECRET", "s3cr3t-value-long-enough")
    settings = Settings.load()
    for text in (repr(settings), str(settings), repr(settings.db), repr(settings.app)):
        assert "hunter2" not in text
        assert "s3cr3t-value-long-enough" not in text


def test_embedded_sqlite_needs_no_cursor_secret() -> None:
    """On embedded SQLite, with nothing set, cursors are signed with the development key."""
    settings = Settings.load()
    assert settings.db.cursor_secret is None
    assert settings.db.cursor_key.get_secret_value()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TENFOLD_DB__URL", "postgresql://app:pw@db.internal:5432/app"),
        ("TENFOLD_DB__SHARDS", '[{"url": "postgresql://app:pw@db.internal:5432/s0"}]'),
    ],
)
def test_a_postgres_database_requires_a_cursor_secret(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """With PostgreSQL configured (main database or a shard), no cursor secret fails startup."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        Settings.load()
    assert info.value.setting == "TENFOLD_DB__CURSOR_SECRET"
    assert "must be set when the database is PostgreSQL" in str(info.value)
    monkeypatch.setenv("TENFOLD_DB__CURSOR_SECRET", "short")
    with pytest.raises(ConfigurationError, match="at least 16 characters") as info:
        Settings.load()
    assert info.value.setting == "TENFOLD_DB__CURSOR_SECRET"


def test_production_requires_a_cursor_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production environment refuses the development cursor key, even on SQLite."""
    from tenfold import Platform

    monkeypatch.setenv("TENFOLD_APP__ENVIRONMENT", "production")
    with pytest.raises(ConfigurationError) as info:
        Platform.build(configure_logs=False)
    assert info.value.setting == "TENFOLD_DB__CURSOR_SECRET"
    monkeypatch.setenv("TENFOLD_DB__CURSOR_SECRET", "s3cr3t-value-long-enough")
    assert Platform.build(configure_logs=False).settings.db.cursor_secret is not None


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A .env file in the working directory supplies settings."""
    (tmp_path / ".env").write_text("TENFOLD_DB__POOL_SIZE=7\n")
    assert Settings.load().db.pool_size == 7


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after they are read."""
    settings = Settings.load()
    with pytest.raises(ValidationError, match="frozen"):
        settings.db.pool_size = 3  # type: ignore[misc]


def test_an_unknown_section_in_dotenv_is_ignored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A .env line for a section no loaded extension has (a worker's, an app's) is not an error,
    while a misspelt key inside a known section still is."""
    (tmp_path / ".env").write_text("TENFOLD_AUDIT__SINK=kafka\nTENFOLD_DB__POOL_SIZE=3\n")
    assert Settings.load().db.pool_size == 3
    (tmp_path / ".env").write_text("TENFOLD_DB__POOLSIZE=3\n")
    with pytest.raises(ConfigurationError, match="TENFOLD_DB__POOLSIZE"):
        Settings.load()


def test_the_old_cursor_secret_variable_names_its_new_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """TENFOLD_APP__CURSOR_SECRET stops startup and names TENFOLD_DB__CURSOR_SECRET."""
    monkeypatch.setenv("TENFOLD_APP__CURSOR_SECRET", "an-old-secret-of-enough-length")
    with pytest.raises(ConfigurationError) as caught:
        Settings.load()
    assert "TENFOLD_APP__CURSOR_SECRET" in str(caught.value)
    assert "TENFOLD_DB__CURSOR_SECRET" in str(caught.value)
