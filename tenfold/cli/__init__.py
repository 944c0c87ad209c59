"""The ``tenfold`` command: ``run``, ``check``, ``config-docs`` and every extension's verbs.

Extensions add commands with ``Extension.commands()``; inside one,
``pass_settings`` hands the command the settings and ``with_platform`` runs an
``async`` command with the platform started.
"""

from tenfold.cli._main import cli, main
from tenfold.cli._target import fail, pass_settings, with_platform

__all__ = ["cli", "fail", "main", "pass_settings", "with_platform"]
