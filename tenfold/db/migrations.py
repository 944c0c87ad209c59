"""Database migrations (Alembic): the verbs behind ``tenfold db ...``.

A public module on purpose, so the CLI and an app's own scripts read as
``migrations.upgrade(settings)``. The implementation is in ``_migrations``.
"""

from tenfold.db._migrations import (
    current,
    current_async,
    downgrade,
    downgrade_async,
    init,
    revision,
    revision_async,
    run_env,
    upgrade,
    upgrade_async,
)

__all__ = [
    "current",
    "current_async",
    "downgrade",
    "downgrade_async",
    "init",
    "revision",
    "revision_async",
    "run_env",
    "upgrade",
    "upgrade_async",
]
