"""The ``tenfold`` command: ``run``, ``check`` and ``db …``."""

from tenfold.cli._main import cli, main

__all__ = ["cli", "main"]
